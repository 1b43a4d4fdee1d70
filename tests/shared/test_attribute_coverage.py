"""shared/attribute_coverage.py: given vs left empty per attribute (pure logic)."""

from __future__ import annotations

from shared import records as rec
from shared.attribute_coverage import coverage, coverage_of_dicts, coverage_text


def entry(value: str | None, best: str = "black") -> dict:
    return {"value": value, "confidence": 0.5, "threshold": 0.6, "best": best}


def test_coverage_counts_given_empty_and_corrected_over_records_with_attributes() -> None:
    records = [
        rec.Classification(status=rec.CLASSIFIED, attributes={"colour": entry("black"), "gender": entry(None, "Men")}),
        rec.Classification(status=rec.NEEDS_REVIEW, attributes={"colour": entry(None), "gender": entry(None, "Men")}),
        rec.Classification(
            status=rec.REVIEWED,
            attributes={"colour": entry(None), "gender": entry("Men", "Men")},
            review={"decision": "approved", rec.REVIEW_ATTRIBUTES: {"colour": "red", "gender": None}},
        ),
        rec.Classification(status=rec.CLASSIFIED),  # a category-only model: not counted
        rec.Classification(status=rec.REJECTED, attributes={"colour": entry("black")}),  # not a result with attributes
    ]
    figures = coverage(records)
    assert figures == {
        "colour": {"records": 3, "given": 2, "empty": 1, "corrected": 1, "given_share": 0.6667},
        "gender": {"records": 3, "given": 0, "empty": 3, "corrected": 1, "given_share": 0.0},
    }
    assert coverage_of_dicts([r.to_firestore() for r in records]) == figures
    assert list(figures) == ["gender", "colour"]  # ATTRIBUTES order, whatever order the records hold
    assert coverage_text(figures).startswith("gender 0/3 given (0.0%, 3 empty, 1 set by reviewers), colour 2/3")
    assert coverage([]) == {} and coverage_text({}) == "-"


def test_health_and_the_report_show_the_coverage() -> None:
    from fashionctl import health
    from reporting.build import attributes_section

    figures = coverage([rec.Classification(status=rec.CLASSIFIED, attributes={"colour": entry(None)})])
    shown = health.Health("v1", 0, None, None, records_last_hour=1, failed_last_hour=0, attributes=figures)
    assert "attributes:    colour 0/1 given (0.0%, 1 empty) (last hour)" in health.render(shown)
    assert "attributes:    - (last hour)" in health.render(health.Health("v1", 0, None, None, 0, 0))
    section = attributes_section(figures)
    assert "<td>colour</td><td>1</td><td>0</td><td>1</td><td>0</td><td>0.0%</td>" in section
    assert attributes_section({}) == ""


def test_every_listing_follows_the_attributes_order() -> None:
    """issue 19: a Firestore map comes back in any order; the CLI lists gender, colour, usage, season."""
    from fashionctl.results import to_row

    shuffled = {"season": entry("Fall"), "usage": entry(None, "Casual"), "colour": entry("black"), "gender": entry("Men")}
    record = rec.Classification(status=rec.CLASSIFIED, attributes=shuffled)
    assert list(record.final_attributes) == ["gender", "colour", "usage", "season"]
    reviewed = rec.Classification(
        status=rec.REVIEWED, attributes={"season": entry("Fall")}, review={rec.REVIEW_ATTRIBUTES: {"colour": "red"}}
    )
    assert list(reviewed.final_attributes) == ["colour", "season"]
    assert to_row(record.to_firestore()).attributes == "gender=Men colour=black usage=? season=Fall"


def test_the_reports_csv_has_one_column_per_attribute_after_the_others() -> None:
    import csv
    import io

    from reporting.build import to_csv
    from shared.attributes import ATTRIBUTES

    record = rec.Classification(
        status=rec.REVIEWED,
        attributes={"season": entry("Fall"), "colour": entry("black"), "gender": entry(None, "Men")},
        review={rec.REVIEW_ATTRIBUTES: {"colour": "blue"}},
    )
    plain = rec.Classification(status=rec.CLASSIFIED, label="Tshirts")
    text = to_csv([record.to_firestore(), plain.to_firestore()])
    header = text.splitlines()[0].split(",")
    assert header[-len(ATTRIBUTES) :] == list(ATTRIBUTES) and header[0] == rec.DOC_ID
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [rows[0][name] for name in ATTRIBUTES] == ["", "blue", "", "Fall"]
    assert [rows[1][name] for name in ATTRIBUTES] == ["", "", "", ""]
