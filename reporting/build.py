"""Build one self-contained HTML report (inline PNG charts) plus CSV and JSON
exports from a list of ``classifications`` records. Pure: no clients here;
``fashionctl report`` fetches the records and writes or uploads the files."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from shared import records as rec
from shared.attribute_coverage import coverage
from shared.attributes import ATTRIBUTES
from shared.records import Field
from shared.report_style import ACCENT, SECOND, report_css
from shared.review_backlog import backlog_of

#: the CSV export's columns, named after the record's fields where they are one
CSV_COLUMNS = (
    rec.DOC_ID,
    Field.CREATED_AT,
    Field.FINISHED_AT,
    "object",
    "generation",
    Field.STATUS,
    Field.LABEL,
    Field.CONFIDENCE,
    Field.MODEL_VERSION,
    Field.DESTINATION,
    "error_reason",
    Field.TRIGGER,
    "total_ms",
    #: then one column per attribute (shared.attributes.ATTRIBUTES order): the
    #: effective value (a reviewer's correction over the model's), "" when
    #: empty or for a category-only model
    *ATTRIBUTES,
)
PERCENTILES = (50, 90, 99)
INTERNAL_FIELDS = rec.INTERNAL_FIELDS


@dataclass
class Summary:
    """The report's figures."""

    total: int = 0
    per_day: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    review_queue: int = 0
    confidences: list[float] = field(default_factory=list)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> {"p50": ..}
    #: the review desk over these records (shared.review_backlog.Backlog.to_dict())
    review: dict[str, Any] = field(default_factory=dict)
    #: attribute coverage over these records (shared.attribute_coverage.coverage())
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "review": self.review,
            "total": self.total,
            "per_day": self.per_day,
            "statuses": self.statuses,
            "categories": self.categories,
            "rejections": self.rejections,
            "review_queue": self.review_queue,
            "latency_ms": self.latency_ms,
            "attributes": self.attributes,
        }


def summarize(records: Sequence[dict[str, Any]], now: datetime | None = None) -> Summary:
    """The figures of ``records``; ``now``: when the review backlog's ages are taken (default: now)."""
    parsed = [rec.Classification.from_firestore(r) for r in records]
    days: Counter = Counter()
    for record in parsed:
        if isinstance(record.created_at, datetime):
            days[record.created_at.astimezone(UTC).strftime("%Y-%m-%d")] += 1
    statuses = Counter(str(r.status or "unknown") for r in parsed)
    categories = Counter(r.label for r in parsed if r.label and r.status in (rec.CLASSIFIED, rec.NEEDS_REVIEW))
    rejections = Counter(r.reason or "unknown" for r in parsed if r.status == rec.REJECTED)
    return Summary(
        total=len(records),
        per_day=dict(sorted(days.items())),
        statuses=dict(statuses.most_common()),
        categories=dict(categories.most_common()),
        rejections=dict(rejections.most_common()),
        review_queue=statuses.get(rec.NEEDS_REVIEW, 0),
        confidences=[float(r.confidence) for r in parsed if isinstance(r.confidence, int | float)],
        latency_ms=latency_percentiles(records),
        review=backlog_of(parsed, now or datetime.now(UTC)).to_dict(),
        attributes=coverage(parsed),
    )


def latency_percentiles(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per step of ``timings_ms`` (download, classify, copy, delete, total): p50, p90, p99."""
    steps: dict[str, list[float]] = {}
    for record in records:
        for step, value in rec.Classification.from_firestore(record).timings_ms.items():
            if isinstance(value, int | float):
                steps.setdefault(step, []).append(float(value))
    return {
        step: {f"p{p}": round(float(np.percentile(values, p)), 2) for p in PERCENTILES} for step, values in sorted(steps.items())
    }


# -- charts --------------------------------------------------------------------


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _bars(counts: dict[str, int], title: str, horizontal: bool = False, color: str = ACCENT) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    labels, values = list(counts) or ["(none)"], list(counts.values()) or [0]
    (ax.barh if horizontal else ax.bar)(labels, values, color=color)
    ax.set_title(title)
    if not horizontal:
        ax.tick_params(axis="x", labelrotation=30)
    return _png(fig)


def _histogram(values: list[float], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.hist(values, bins=20, range=(0.0, 1.0), color=ACCENT)
    ax.set_title(title)
    ax.set_xlabel("confidence")
    return _png(fig)


def _latency(latency: dict[str, dict[str, float]]) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    steps = list(latency) or ["(none)"]
    x = np.arange(len(steps))
    for k, (p, color) in enumerate(zip(PERCENTILES, (ACCENT, SECOND, "#d93025"), strict=True)):
        ax.bar(x + (k - 1) * 0.27, [latency.get(s, {}).get(f"p{p}", 0.0) for s in steps], 0.27, label=f"p{p}", color=color)
    ax.set_xticks(x, steps)
    ax.set_ylabel("ms")
    ax.set_title("Processing latency percentiles")
    ax.legend()
    return _png(fig)


def charts(summary: Summary) -> dict[str, bytes]:
    """Chart title -> PNG bytes."""
    return {
        "Volume per day": _bars(summary.per_day, "Records per day"),
        "Category distribution": _bars(summary.categories, "Categories (classified and for review)", horizontal=True),
        "Confidence histogram": _histogram(summary.confidences, "Confidence of the top label"),
        "Status": _bars(summary.statuses, "Status", color=SECOND),
        "Rejection reasons": _bars(summary.rejections, "Rejection reasons", color="#d93025"),
        "Processing latency": _latency(summary.latency_ms),
    }


# -- exports -------------------------------------------------------------------


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """One record as a CSV row (:data:`CSV_COLUMNS`)."""
    parsed = rec.Classification.from_firestore(record)
    values = (
        parsed.id or "",
        _iso(parsed.created_at),
        _iso(parsed.finished_at),
        parsed.source.name if parsed.source else "",
        str(parsed.source.generation) if parsed.source else "",
        parsed.status or "",
        parsed.label or "",
        "" if parsed.confidence is None else parsed.confidence,
        parsed.model_version or "",
        parsed.destination.uri if parsed.destination else "",
        parsed.reason or "",
        parsed.trigger or "",
        parsed.timings_ms.get(rec.TOTAL_MS, ""),
        *(parsed.final_attributes.get(name) or "" for name in ATTRIBUTES),
    )
    return dict(zip(CSV_COLUMNS, values, strict=True))


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(csv_row(r) for r in records)
    return buffer.getvalue()


def to_json(records: Sequence[dict[str, Any]], summary: Summary, meta: dict[str, Any]) -> str:
    public = [{k: v for k, v in r.items() if k not in INTERNAL_FIELDS} for r in records]
    return json.dumps({"meta": meta, "summary": summary.to_dict(), "records": public}, default=_iso, indent=2, sort_keys=True)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


# -- HTML ----------------------------------------------------------------------


def render_html(summary: Summary, pngs: dict[str, bytes], meta: dict[str, Any]) -> str:
    """One HTML file with every chart inlined."""
    esc = html.escape
    cards = [
        ("Records", str(summary.total)),
        ("Classified", str(summary.statuses.get("classified", 0))),
        ("Review queue", str(summary.review_queue)),
        ("Rejected", str(summary.statuses.get("rejected", 0))),
        ("Failed", str(summary.statuses.get("failed", 0))),
        ("p50 total latency", f"{summary.latency_ms.get('total', {}).get('p50', 0):.0f} ms"),
    ]
    latency_rows = "".join(
        f"<tr><td>{esc(step)}</td>{''.join(f'<td>{v:.1f}</td>' for v in ps.values())}</tr>"
        for step, ps in summary.latency_ms.items()
    )
    figures = "".join(
        f"<figure><img alt='{esc(title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption>{esc(title)}</figcaption></figure>"
        for title, png in pngs.items()
    )
    model = meta.get("model_version") or "none"
    link = meta.get("model_report_url")
    model_html = f"<a href='{esc(link)}'>model {esc(model)} training report</a>" if link else f"model {esc(model)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Fashion classifier: last {meta["days"]} days</title>
<style>
{report_css(140)}</style></head><body>
<h1>Fashion classifier: the last {meta["days"]} days</h1>
<p class="meta">{esc(meta.get("since", ""))} to {esc(meta.get("generated_at", ""))} · project {esc(meta.get("project", ""))} ·
{model_html}</p>
<div class="cards">{"".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in cards)}</div>
<h2>Processing latency (ms)</h2>
<table><tr><th>step</th>{"".join(f"<th>p{p}</th>" for p in PERCENTILES)}</tr>{latency_rows}</table>
{review_section(summary.review)}
{attributes_section(summary.attributes)}
<h2>Charts</h2>{figures}
<p class="meta">Exports: records.csv, records.json next to this file.</p>
</body></html>
"""


def review_section(review: dict[str, Any]) -> str:
    """The review desk's part of the report: the backlog among the report's
    records, decisions per day, the model's accuracy on reviewed items."""
    if not review:
        return ""
    esc = html.escape
    age = review.get("oldest_age_s")
    accuracy = review.get("accuracy_on_reviewed")
    cards = [
        *((f"Waiting: {band}", str(n)) for band, n in sorted(review["per_band"].items())),
        ("Oldest waiting", "-" if age is None else f"{age / 3600:.1f} h"),
        ("Reviewed", str(review["reviewed"])),
        ("Model right on reviewed", "-" if accuracy is None else f"{accuracy:.1%}"),
    ]
    decisions = sorted({d for day in review["reviewed_per_day"].values() for d in day})
    rows = "".join(
        f"<tr><td>{esc(day)}</td>{''.join(f'<td>{counts.get(d, 0)}</td>' for d in decisions)}</tr>"
        for day, counts in review["reviewed_per_day"].items()
    )
    table = f"<table><tr><th>day</th>{''.join(f'<th>{esc(d)}</th>' for d in decisions)}</tr>{rows}</table>" if rows else ""
    return (
        "<h2>Review desk</h2>"
        f"<div class='cards'>{''.join(f'<div class=card><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in cards)}</div>"
        f"{table}<p class='meta'>Over the records of this report. {esc(review.get('accuracy_rule', ''))}.</p>"
    )


def attributes_section(figures: dict[str, dict[str, Any]]) -> str:
    """Attribute coverage: per attribute, the records given a value vs left empty (none: no section)."""
    if not figures:
        return ""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{c['records']}</td><td>{c['given']}</td><td>{c['empty']}</td>"
        f"<td>{c['corrected']}</td><td>{c['given_share']:.1%}</td></tr>"
        for name, c in figures.items()
    )
    return (
        "<h2>Attributes</h2>"
        "<table><tr><th>attribute</th><th>records</th><th>given</th><th>left empty</th><th>set by reviewers</th>"
        f"<th>given share</th></tr>{rows}</table>"
        "<p class='meta'>Over the records of this report classified by a model with attribute heads; "
        "left empty: below the attribute's threshold, or a reviewer left it empty.</p>"
    )


@dataclass(frozen=True)
class Report:
    html: str
    csv: str
    json: str
    summary: Summary

    def files(self) -> dict[str, tuple[str, str]]:
        """File name -> (content, content type)."""
        return {
            "report.html": (self.html, "text/html; charset=utf-8"),
            "records.csv": (self.csv, "text/csv; charset=utf-8"),
            "records.json": (self.json, "application/json"),
        }


def build(records: Sequence[dict[str, Any]], meta: dict[str, Any], now: datetime | None = None) -> Report:
    summary = summarize(records, now)
    return Report(render_html(summary, charts(summary), meta), to_csv(records), to_json(records, summary, meta), summary)
