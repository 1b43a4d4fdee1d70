"""What travels with a file to its processed copy (shared/copy_metadata.py): pure logic."""

from __future__ import annotations

from types import SimpleNamespace

from shared import copy_metadata as meta
from shared import record_updates as updates
from shared import records as rec
from shared.copy_metadata import Attached, result_metadata, source_generation
from shared.settings import Settings

REF = rec.ObjectRef("in", "fix/sku-W77.jpg", 17, 1234, "image/jpeg")
REQUIRED = {"GOOGLE_CLOUD_PROJECT": "p", "INCOMING_BUCKET": "a", "PROCESSED_BUCKET": "b", "MODELS_BUCKET": "c"}


def blob(**properties) -> SimpleNamespace:
    base = {"content_type": None, "cache_control": None, "content_disposition": None, "content_language": None, "metadata": None}
    return SimpleNamespace(**(base | properties))


def test_the_uploaders_properties_and_metadata_are_kept_and_the_result_wins_on_a_clash():
    attached = Attached.from_blob(
        blob(content_type="image/png", cache_control="no-cache", content_language="de", metadata={"sku": " W77 ", "status": "x"})
    )
    decision = rec.Decision(rec.CLASSIFIED, "Watches", 0.9123456, [], "v9")
    copy = blob()
    attached.apply_to(copy, REF, decision)
    assert (copy.content_type, copy.cache_control, copy.content_language) == ("image/png", "no-cache", "de")
    assert copy.metadata["sku"] == " W77 " and copy.metadata["status"] == "classified"
    assert copy.metadata["category"] == "Watches" and copy.metadata["confidence"] == "0.912346"
    assert copy.metadata["model-version"] == "v9" and copy.metadata["classification-id"] == REF.doc_id
    assert attached.sku("sku") == "W77" and attached.sku("other") is None and attached.sku("") is None


def test_a_rejection_names_its_reason_and_no_category():
    decision = rec.Decision(rec.REJECTED, error=rec.error_info("corrupt", "bad"), model_version="v9")
    data = result_metadata(REF, decision)
    assert data["rejection-reason"] == "corrupt" and "category" not in data and "confidence" not in data
    copy = blob()
    Attached().apply_to(copy, REF, decision)
    assert copy.content_type == "image/jpeg"  # the event's, when the object had none


def test_only_a_copy_of_the_same_upload_name_says_which_version_it_holds():
    own = blob(metadata={"source-bucket": "in", "source-name": REF.name, "source-generation": "12"})
    assert source_generation(own, REF) == 12
    assert source_generation(blob(metadata={**own.metadata, "source-name": "other.jpg"}), REF) is None
    assert source_generation(blob(metadata={**own.metadata, "source-generation": "x"}), REF) is None
    assert source_generation(blob(), REF) is None


def test_the_sku_key_is_read_from_the_environment():
    assert Settings.from_env(REQUIRED).sku_metadata_key == "sku"
    assert Settings.from_env(REQUIRED | {"SKU_METADATA_KEY": "article-no"}).sku_metadata_key == "article-no"


def test_the_sku_round_trips_through_the_decision_and_the_final_update():
    decision = rec.Decision(rec.EMPTY, error=rec.error_info(rec.ZERO_BYTES, "none"), sku="W77")
    assert rec.Decision.from_dict(decision.to_dict()) == decision
    final = updates.final_update(decision, None, {}, rec.utcnow())
    record = rec.Classification.from_firestore(final)
    assert record.sku == "W77" and record.finished and record.status == "empty"
    assert rec.counter_fields(rec.EMPTY, None, rec.ZERO_BYTES) == {"total": 1, "status.empty": 1}


ATTRS = {
    "gender": {"value": "Women", "confidence": 0.91, "threshold": 0.6, "best": "Women"},
    "colour": {"value": None, "confidence": 0.41, "threshold": 0.55, "best": "black"},
}


def test_each_attribute_has_a_key_and_a_low_confidence_one_a_flag_not_a_guess():
    decision = rec.Decision(rec.CLASSIFIED, "Heels", 0.9, [], "v9", band=rec.BAND_AUTO, attributes=ATTRS)
    data = result_metadata(REF, decision)
    assert data["attribute-gender"] == "Women" and "attribute-gender-flag" not in data
    assert "attribute-colour" not in data and data["attribute-colour-flag"] == meta.LOW_CONFIDENCE
    # the uploader's keys of the same names never survive beside the model's answer
    copy = blob()
    Attached(metadata={"attribute-colour": "pink", "attribute-gender": "Men", "attribute-usage": "kept"}).apply_to(
        copy, REF, decision
    )
    assert "attribute-colour" not in copy.metadata and copy.metadata["attribute-gender"] == "Women"
    assert copy.metadata["attribute-usage"] == "kept"  # not an attribute of this model: the uploader's own key
    # a category-only model writes no attribute key
    assert not [
        k for k in result_metadata(REF, rec.Decision(rec.CLASSIFIED, "Heels", 0.9, [], "v9")) if k.startswith("attribute-")
    ]


def test_a_reviewers_corrections_rewrite_the_attribute_keys_of_the_moved_copy():
    before = result_metadata(REF, rec.Decision(rec.NEEDS_REVIEW, "Heels", 0.5, [], "v9", band="review", attributes=ATTRS))
    after = meta.reviewed_metadata(before, rec.APPROVED, "Heels", "ann", {"colour": "red", "gender": None}, ATTRS)
    assert after["attribute-colour"] == "red" and "attribute-colour-flag" not in after
    assert "attribute-gender" not in after and after["attribute-gender-flag"] == meta.CLEARED_BY_REVIEWER
    assert after["status"] == rec.REVIEWED and after["category"] == "Heels"
    assert meta.reviewed_metadata(before, rec.APPROVED, "Heels", "ann") == {
        **before,
        "status": rec.REVIEWED,
        "review-decision": rec.APPROVED,
        "reviewed-by": "ann",
    }


def test_a_changed_decision_rewrites_the_attribute_keys_from_the_model_and_its_own_corrections():
    before = result_metadata(REF, rec.Decision(rec.NEEDS_REVIEW, "Heels", 0.5, [], "v9", band="review", attributes=ATTRS))
    first = meta.reviewed_metadata(before, rec.APPROVED, "Heels", "ann", {"colour": "red", "gender": None}, ATTRS)
    changed = meta.reviewed_metadata(first, rec.RELABELED, "Tops", "bob", {}, ATTRS)  # no corrections this time
    assert changed["attribute-gender"] == "Women" and "attribute-gender-flag" not in changed
    assert "attribute-colour" not in changed and changed["attribute-colour-flag"] == meta.LOW_CONFIDENCE
    assert changed["category"] == "Tops" and changed["reviewed-by"] == "bob"
