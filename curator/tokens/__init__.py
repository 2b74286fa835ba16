"""Token counts: `n_tokens` for samples already in the store (:func:`curator.tokens.counts.tokens`)."""

from curator.tokens.counts import TokensError, TokensResult, tokens

__all__ = ["TokensError", "TokensResult", "tokens"]
