"""A small learned classifier for invitations to leave the platform that rules miss.

Soft and foreign phrasings ("somewhere the fee doesn't apply", "lo arreglamos entre
nosotros", "melde dich privat") are too many for rules. A logistic regression over the
character n-grams of each word of the normalised text, trained on the development part
only by ``tools/train_invitation_model.py``, ships as ``invitation_model.json``: weights
for n-grams, read once at import. Scoring is a sum of weights, done here without
scikit-learn, so nothing is downloaded or trained at run time.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Final

MODEL_PATH: Final = Path(__file__).with_name("invitation_model.json")
NGRAM_RANGE: Final = (3, 5)
# Distinct words whose weighted n-grams are kept; a few hundred kilobytes at most.
_WORD_CACHE_SIZE: Final = 20_000


def features(normalised: str) -> set[str]:
    """Character n-grams of each word padded with spaces (scikit-learn's "char_wb")."""
    grams: set[str] = set()
    for word in normalised.split():
        grams.update(word_features(word))
    return grams


def word_features(word: str) -> set[str]:
    """The character n-grams of one word, padded with spaces."""
    low, high = NGRAM_RANGE
    padded = f" {word} "
    grams: set[str] = set()
    for size in range(low, high + 1):
        if len(padded) <= size:
            grams.add(padded)
            continue
        grams.update(padded[offset : offset + size] for offset in range(len(padded) - size + 1))
    return grams


class InvitationModel:
    def __init__(self, weights: dict[str, float], bias: float, threshold: float) -> None:
        self._weights = weights
        self._bias = bias
        self.threshold = threshold
        # Chat reuses a small vocabulary: the weighted n-grams of a word are worked out
        # once, and n-grams the model has no weight for are dropped there.
        self._weighted_features = lru_cache(maxsize=_WORD_CACHE_SIZE)(self._word_weighted)

    def _word_weighted(self, word: str) -> frozenset[str]:
        return frozenset(gram for gram in word_features(word) if gram in self._weights)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> InvitationModel:
        model = json.loads(path.read_text("utf-8"))
        if tuple(model["ngram_range"]) != NGRAM_RANGE:
            raise ValueError(f"{path.name} was trained on n-grams {model['ngram_range']}")
        weights = {str(gram): float(weight) for gram, weight in model["weights"].items()}
        return cls(weights, float(model["bias"]), float(model["threshold"]))

    def score(self, normalised: str) -> float:
        """The logistic regression's decision value: the same n-grams as :func:`features`."""
        grams: set[str] = set().union(*map(self._weighted_features, normalised.split()))
        weights = self._weights
        return self._bias + sum(weights[gram] for gram in grams)

    def is_invitation(self, normalised: str) -> bool:
        return self.score(normalised) > self.threshold


INVITATION_MODEL: Final = InvitationModel.load()
