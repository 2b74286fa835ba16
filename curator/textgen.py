"""A tiny word n-gram language model: the generative model of the demo.

Small and real: it is trained on samples, generates new ones, and its output drifts from the real
distribution the way larger models' output does when they are trained on their own samples.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

BOS = "<s>"
EOS = "</s>"


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

    def fit(self, texts: Iterable[str]) -> NGramModel:
        for text in texts:
            words = [BOS] * self.order + text.split() + [EOS]
            for i in range(self.order, len(words)):
                context = tuple(words[i - self.order : i])
                counts = self._next[context]
                counts[words[i]] = counts.get(words[i], 0) + 1
        # Fixed order of candidates so sampling depends only on the seed.
        self._table = {
            context: (sorted(counts), [counts[w] for w in sorted(counts)])
            for context, counts in self._next.items()
        }
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
