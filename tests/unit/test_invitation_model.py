"""The learned invitation classifier: trained on the development part only, reproducibly,
scored without scikit-learn exactly as scikit-learn would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sklearn.feature_extraction.text import CountVectorizer

from moderation.contact_details import find_contact_details
from moderation.invitation_model import INVITATION_MODEL, MODEL_PATH, NGRAM_RANGE, features

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import train_invitation_model  # noqa: E402


def test_features_are_scikit_learns_char_wb_ngrams() -> None:
    text = "lo arreglamos entre nosotros, ok? a"
    reference = CountVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, lowercase=False)
    reference.fit([text])
    assert features(text) == set(reference.get_feature_names_out())


def test_the_shipped_model_is_what_the_development_part_trains() -> None:
    # Deterministic: retraining on the development part gives the shipped weights.
    shipped = json.loads(MODEL_PATH.read_text("utf-8"))
    assert train_invitation_model.train(*train_invitation_model.training_set()) == shipped


def test_the_training_set_is_the_development_part_only() -> None:
    assert train_invitation_model.DEV.name == "dev.jsonl"
    assert "heldout" not in Path(train_invitation_model.__file__).read_text("utf-8")


def test_soft_invitations_are_flagged_and_project_talk_is_not() -> None:
    assert INVITATION_MODEL.score("we can keep talking somewhere more private") > (
        INVITATION_MODEL.score("can you send the revised logo by friday")
    )
    flagged = find_contact_details("honestly let's arrange it between us, no site in the middle")
    assert [hit.kind for hit in flagged] == ["off_platform_request"]
    assert find_contact_details("can you send the revised logo by friday?") == []
