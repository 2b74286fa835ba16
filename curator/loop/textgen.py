"""A tiny word n-gram language model: the generative model of the demo.

Small and real: it is trained on samples, generates new ones, and its output drifts from the real
distribution the way larger models' output does when they are trained on their own samples.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"


class NGramModel:
    """Word n-gram model with maximum-likelihood transitions.

    >>> model = NGramModel(order=2).fit(["the cat sat", "the dog sat"])
    >>> text = model.generate(random.Random(0))
    >>> text.startswith("the ")
    True
    """

    def __init__(self, order: int = 2) -> None:
        if order < 1:
            raise ValueError("order must be >= 1")
        self.order = order
        self._next: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
        self._unigrams: Counter[str] = Counter()

    def fit(self, texts: Iterable[str]) -> NGramModel:
        for text in texts:
            words = [BOS] * self.order + text.split() + [EOS]
            for i in range(self.order, len(words)):
                context = tuple(words[i - self.order : i])
                counts = self._next[context]
                counts[words[i]] = counts.get(words[i], 0) + 1
                self._unigrams[words[i]] += 1
        # Fixed order of candidates so sampling depends only on the seed.
        self._table = {
            context: (sorted(counts), [counts[w] for w in sorted(counts)])
            for context, counts in self._next.items()
        }
        self._context_totals = {context: sum(c.values()) for context, c in self._next.items()}
        return self

    def generate(self, rng: random.Random, max_words: int = 120) -> str:
        context = (BOS,) * self.order
        words: list[str] = []
        while len(words) < max_words:
            candidates, weights = self._table[context]
            word = rng.choices(candidates, weights=weights)[0]
            if word == EOS:
                break
            words.append(word)
            context = (*context[1:], word)
        return " ".join(words)

    def perplexity(
        self,
        texts: Sequence[str],
        vocabulary: Iterable[str],
        *,
        interpolation: float = 0.8,
        add_k: float = 0.1,
    ) -> float:
        """Perplexity per word (end of text included) of `texts` under the model, smoothed so that
        every word of `vocabulary` has a probability: the n-gram estimate interpolated with an
        add-k unigram over `vocabulary` (plus end-of-text and one unknown-word token, to which
        words outside `vocabulary` map). A model that has forgotten words the held-out texts use
        scores worse.

        >>> model = NGramModel(order=1).fit(["a b", "a c"])
        >>> round(model.perplexity(["a b"], {"a", "b", "c"}), 3)
        1.455
        """
        vocab = set(vocabulary) | {EOS, UNK}
        unigram_total = sum(self._unigrams[w] for w in vocab) + add_k * len(vocab)
        log_sum = 0.0
        count = 0
        for text in texts:
            words = [w if w in vocab else UNK for w in text.split()]
            padded = [BOS] * self.order + words + [EOS]
            for i in range(self.order, len(padded)):
                word = padded[i]
                unigram = (self._unigrams[word] + add_k) / unigram_total
                context = tuple(padded[i - self.order : i])
                counts = self._next.get(context)
                if counts:
                    ngram = counts.get(word, 0) / self._context_totals[context]
                    probability = interpolation * ngram + (1 - interpolation) * unigram
                else:
                    probability = unigram
                log_sum += math.log(probability)
                count += 1
        return math.exp(-log_sum / max(count, 1))


def distinct_ngrams(texts: Iterable[str], n: int) -> int:
    """How many distinct word n-grams `texts` hold (n-grams do not cross texts).

    >>> distinct_ngrams(["a b a b", "b a"], 2)
    2
    """
    seen: set[tuple[str, ...]] = set()
    for text in texts:
        words = text.split()
        seen.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(seen)
