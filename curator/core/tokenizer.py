"""Tokenizers: a Hugging Face ``tokenizer.json`` loaded with the ``tokenizers`` library.

A tokenizer is always a local file (or a directory holding ``tokenizer.json``); curator never
downloads one. The file is identified by its sha256, so a manifest can say exactly which tokenizer
counted or encoded a set's tokens. Loading is cached per process (workers load each file once).
Counts never include special tokens (``add_special_tokens=False``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.core.errors import InputError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Special tokens tried, in this order, as the end-of-document separator when none is configured.
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]", "<|im_end|>")


class TokenizerError(InputError):
    """A tokenizer file is missing, unreadable, or lacks what was asked of it."""


@dataclass(frozen=True)
class TokenizerInfo:
    """What identifies a tokenizer: its file (absolute), its sha256 and its vocabulary size."""

    path: str
    sha256: str
    vocab_size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "vocab_size": self.vocab_size}


def tokenizer_file(path: str | os.PathLike[str]) -> Path:
    """The ``tokenizer.json`` that `path` names (the file itself, or a directory holding one)."""
    given = Path(path).expanduser()
    candidate = given / "tokenizer.json" if given.is_dir() else given
    if not candidate.is_file():
        raise TokenizerError(
            f"tokenizer `{path}` is not a file"
            + (" (the directory holds no `tokenizer.json`)" if given.is_dir() else ""),
            "give the path of a Hugging Face `tokenizer.json` on this machine; curator never "
            "downloads tokenizers (save one with `tokenizer.save(path)` or "
            "`AutoTokenizer.from_pretrained(...).backend_tokenizer.save(path)`)",
        )
    return candidate.resolve()


def tokenizer_sha256(path: Path) -> str:
    """The sha256 of a tokenizer file (what the manifests and shard footers record)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _load(path: str, sha256: str) -> Tokenizer:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(path)
    except Exception as exc:  # the Rust side raises plain Exception subclasses
        raise TokenizerError(
            f"tokenizer `{path}` could not be read: {exc}",
            "give a Hugging Face `tokenizer.json` (the fast-tokenizer format)",
        ) from None


def load_tokenizer(path: str | os.PathLike[str]) -> tuple[Tokenizer, TokenizerInfo]:
    """Load the tokenizer at `path` (cached per process, keyed by file and content)."""
    file = tokenizer_file(path)
    sha256 = tokenizer_sha256(file)
    tokenizer = _load(str(file), sha256)
    return tokenizer, TokenizerInfo(
        str(file), sha256, tokenizer.get_vocab_size(with_added_tokens=True)
    )


def count_tokens(tokenizer: Tokenizer, texts: list[str | None]) -> list[int | None]:
    """Tokens of each text without special tokens; ``None`` where the text is ``None``."""
    present = [text for text in texts if text is not None]
    encodings = tokenizer.encode_batch_fast(present, add_special_tokens=False) if present else []
    counts = iter(len(encoding.ids) for encoding in encodings)
    return [None if text is None else next(counts) for text in texts]


def separator_id(tokenizer: Tokenizer, separator: str | int | None, where: str) -> int:
    """The token id that ends each document: `separator` (a token or an id) if given, else the
    tokenizer's first special token among :data:`EOS_CANDIDATES`."""
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    if isinstance(separator, int):
        if not 0 <= separator < vocab:
            raise TokenizerError(
                f"{where}: separator id {separator} is outside the vocabulary (0..{vocab - 1})",
                "give a token id of this tokenizer, or the token itself as a string",
            )
        return separator
    if separator is not None:
        token_id = tokenizer.token_to_id(separator)
        if token_id is None:
            raise TokenizerError(
                f"{where}: separator {separator!r} is not a token of this tokenizer",
                "give one of its special tokens, e.g. "
                + ", ".join(repr(t) for t in EOS_CANDIDATES[:3]),
            )
        return token_id
    for candidate in EOS_CANDIDATES:
        token_id = tokenizer.token_to_id(candidate)
        if token_id is not None:
            return token_id
    raise TokenizerError(
        f"{where}: the tokenizer has no end-of-document token (tried {', '.join(EOS_CANDIDATES)})",
        "set `separator` to the token (or token id) that ends each document",
    )
