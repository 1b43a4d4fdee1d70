"""Report stage: PNG charts and one self-contained HTML report."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from shared.report_style import ACCENT, SECOND, report_css

CHARTS = {
    "training_curves.png": "Training curves",
    "confusion_matrix.png": "Confusion matrix (test split, served model)",
    "per_class_accuracy.png": "Per-class recall on the test split",
    "class_distribution.png": "Class distribution by split",
}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(history: dict[str, list], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for axis, key, title in ((left, "accuracy", "Accuracy"), (right, "loss", "Loss")):
        axis.plot(epochs, history.get(key, []), label="train", color=ACCENT)
        axis.plot(epochs, history.get(f"val_{key}", []), label="validation", color=SECOND)
        phases = history.get("phase", [])
        if "fine_tune" in phases:
            start = phases.index("fine_tune") + 0.5
            axis.axvline(start, color="#888", linestyle="--", linewidth=1)
            axis.text(start, axis.get_ylim()[1], " fine-tune", va="top", fontsize=8, color="#555")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    _save(fig, path)


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    data = np.asarray(matrix)
    fig, axis = plt.subplots(figsize=(7.5, 6.5))
    axis.imshow(data, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    top = data.max() if data.size else 0
    for (i, j), value in np.ndenumerate(data):
        if value:
            axis.text(j, i, str(value), ha="center", va="center", fontsize=8, color="white" if value > top / 2 else "black")
    _save(fig, path)


def plot_per_class(series: dict[str, dict[str, Any]], labels: list[str], path: Path) -> None:
    fig, axis = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / max(1, len(series))
    colors = [ACCENT, SECOND, "#34a853", "#a142f4"]
    for k, (name, per_class) in enumerate(series.items()):
        values = [per_class[label]["recall"] for label in labels]
        axis.bar(np.arange(len(labels)) + k * width, values, width, label=name, color=colors[k % 4])
    axis.set_xticks(np.arange(len(labels)) + width * (len(series) - 1) / 2, labels, rotation=30, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("recall")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="lower right")
    _save(fig, path)


def plot_distribution(counts: dict[str, dict[str, int]], labels: list[str], path: Path) -> None:
    fig, axis = plt.subplots(figsize=(9, 3.8))
    bottom = np.zeros(len(labels))
    for name, color in zip(("train", "val", "test"), (ACCENT, SECOND, "#34a853"), strict=True):
        values = np.array([counts.get(name, {}).get(label, 0) for label in labels])
        axis.bar(labels, values, bottom=bottom, label=name, color=color)
        bottom += values
    axis.set_ylabel("images")
    axis.tick_params(axis="x", rotation=30)
    axis.grid(axis="y", alpha=0.3)
    axis.legend()
    _save(fig, path)


def write_charts(
    out: Path, *, history: dict, labels: list[str], served: dict, keras_metrics: dict, distribution: dict[str, dict[str, int]]
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    plot_training_curves(history, out / "training_curves.png")
    plot_confusion(served["confusion_matrix"], labels, out / "confusion_matrix.png")
    plot_per_class(
        {"Keras": keras_metrics["per_class"], "TFLite (served)": served["per_class"]}, labels, out / "per_class_accuracy.png"
    )
    plot_distribution(distribution, labels, out / "class_distribution.png")
    return [out / name for name in CHARTS]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _threshold_cell(value: float, reached: bool) -> str:
    return f"{value:.3f}" if reached else "never (1.0)"


def thresholds_html(thresholds: dict[str, Any] | None) -> str:
    """The report's per-class thresholds section (training/thresholds.py), or a
    line saying the manifest has none (serving then uses CONFIDENCE_THRESHOLD)."""
    esc = html.escape
    if not thresholds or not thresholds.get("classes"):
        return "<p class='meta'>No per-class thresholds in the manifest: serving uses CONFIDENCE_THRESHOLD for every class.</p>"
    rows = "".join(
        f"<tr><td>{esc(label)}</td><td>{e['predicted']}</td>"
        f"<td>{_threshold_cell(e['auto'], e['auto_reached'])}</td><td>{_pct(e['auto_rate'])} ({e['auto_images']})</td>"
        f"<td>{_pct(e['auto_precision'])}</td>"
        f"<td>{_threshold_cell(e['check'], e['check_reached']) if e['check'] < e['auto'] else 'no check band'}</td>"
        f"<td>{_pct(e['check_rate'])} ({e['check_images']})</td><td>{_pct(e['check_precision'])}</td>"
        f"<td>{e['review_images']}</td></tr>"
        for label, e in thresholds["classes"].items()
    )
    never = [label for label, e in thresholds["classes"].items() if not e["auto_reached"]]
    note = (
        f"<p class='meta'>Never auto-filed (the target was not reached on validation): {esc(', '.join(never))}.</p>"
        if never
        else ""
    )
    return f"""<p class="meta">Targets: auto-filed precision {_pct(thresholds["auto_precision"])}, quick check
{_pct(thresholds["check_precision"])} (of the quick-check band itself), at least {thresholds["min_auto_images"]} validation images
auto-filed and {thresholds.get("min_check_images", "-")} in the quick-check band;
{thresholds["images"]} validation images through the served model ({esc(str(thresholds.get("variant", "")))}).
Rule: {esc(thresholds.get("rule", ""))}. Shares are of the images predicted as the class.</p>
<table><tr><th>predicted class</th><th>val images</th><th>auto threshold</th><th>auto-filed</th><th>auto precision</th>
<th>check threshold</th><th>quick check</th><th>check precision</th><th>full review</th></tr>{rows}</table>{note}"""


def attributes_html(attributes: dict[str, Any] | None) -> str:
    """The report's per-attribute section (issue 19): for each attribute head,
    accuracy, macro-F1, coverage at its threshold and the confusion matrix on
    the test split (``training.attributes.attribute_metrics`` per attribute,
    with ``classes`` and ``threshold`` added); empty for a category-only model."""
    if not attributes:
        return ""
    esc = html.escape
    parts = [
        "<h2>Attributes (test split)</h2><table><tr><th>attribute</th><th>accuracy</th><th>macro F1</th>"
        "<th>threshold</th><th>filled in</th><th>accuracy when filled</th><th>test images</th><th>missing labels</th></tr>"
    ]
    for name, m in attributes.items():
        threshold = m.get("threshold", 1.0)
        parts.append(
            f"<tr><td>{esc(name)}</td><td>{_pct(m['accuracy'])}</td><td>{_pct(m['macro_f1'])}</td>"
            f"<td>{_threshold_cell(threshold, threshold < 1.0)}</td><td>{_pct(m.get('coverage'))}</td>"
            f"<td>{_pct(m.get('accuracy_when_filled'))}</td><td>{m['images']}</td><td>{m.get('missing', 0)}</td></tr>"
        )
    parts.append("</table>")
    for name, m in attributes.items():
        classes = m.get("classes") or list(m.get("per_class", {}))
        head = "".join(f"<th>{esc(c)}</th>" for c in classes)
        body = "".join(
            f"<tr><th>{esc(c)}</th>{''.join(f'<td>{n}</td>' for n in row)}</tr>"
            for c, row in zip(classes, m["confusion_matrix"], strict=True)
        )
        parts.append(
            f"<h3>{esc(name)}: confusion (rows: truth, columns: predicted)</h3><table><tr><th></th>{head}</tr>{body}</table>"
        )
    return "".join(parts)


def render_html(out: Path, metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    """One HTML file with every chart inlined, readable offline and by mail."""
    esc = html.escape
    served = metrics["served"]
    cards = [
        ("Test accuracy (served)", _pct(served["accuracy"])),
        ("Macro F1", _pct(served["macro_f1"])),
        ("Keras / TFLite agreement", _pct(metrics["agreement"])),
        ("Model size", f"{metrics['model_bytes'] / 1e6:.2f} MB"),
    ]
    rows = "".join(
        f"<tr><td>{esc(label)}</td><td>{_pct(m['precision'])}</td><td>{_pct(m['recall'])}</td>"
        f"<td>{_pct(m['f1'])}</td><td>{m['support']}</td></tr>"
        for label, m in served["per_class"].items()
    )
    variants = "".join(
        f"<tr><td>{esc(name)}</td><td>{_pct(v['accuracy'])}</td><td>{_pct(v['macro_f1'])}</td>"
        f"<td>{_pct(v.get('agreement'))}</td><td>{v.get('model_bytes', 0) / 1e6:.2f} MB</td>"
        f"<td>{v['invoke_ms']:.2f} ms</td><td>{'served' if name == metrics.get('served_variant') else ''}</td></tr>"
        if "invoke_ms" in v
        else f"<tr><td>{esc(name)}</td><td>{_pct(v['accuracy'])}</td><td>{_pct(v['macro_f1'])}</td>"
        f"<td>{_pct(v.get('agreement'))}</td><td>{v.get('model_bytes', 0) / 1e6:.2f} MB</td><td>–</td><td></td></tr>"
        for name, v in metrics["variants"].items()
    )
    charts = "".join(
        f"<figure><img alt='{esc(title)}' src='data:image/png;base64,"
        f"{base64.b64encode((out / name).read_bytes()).decode()}'><figcaption>{esc(title)}</figcaption></figure>"
        for name, title in CHARTS.items()
        if (out / name).is_file()
    )
    gate = metrics.get("gate", {})
    gate_html = (
        f"<p class='gate {'ok' if gate.get('passed') else 'refused'}'>Quality gate: "
        f"{'passed' if gate.get('passed') else 'refused'}: {esc(gate.get('reason', ''))}</p>"
        if gate
        else ""
    )
    skipped = ", ".join(f"{esc(k)}: {v}" for k, v in metrics.get("skipped", {}).items()) or "none"
    base = manifest.get("base_network", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model {esc(manifest["version"])}: training report</title>
<style>
{report_css(170)}.gate{{padding:.6rem 1rem;border-radius:6px}} .ok{{background:#e6f4ea;color:#137333}} .refused{{background:#fce8e6;color:#c5221f}}
</style></head><body>
<h1>Fashion classifier: model {esc(manifest["version"])}</h1>
<p class="meta">{esc(str(base.get("name", "")))} alpha {esc(str(base.get("alpha", "")))}, input {manifest["input_size"]}px,
served as {esc(manifest["quantization"].get("type", ""))} · {len(manifest["labels"])} classes ·
{served["images"]} test images · trained in {metrics.get("train_seconds", 0):.0f} s · created {esc(manifest.get("created_at", ""))}</p>
{gate_html}
<div class="cards">{"".join(f'<div class="card"><b>{v}</b><span>{esc(k)}</span></div>' for k, v in cards)}</div>
<h2>Exported variants (test split, through the serving Classifier)</h2>
<table><tr><th>variant</th><th>accuracy</th><th>macro F1</th><th>agreement with Keras</th><th>size</th>
<th>bare invoke() (1 thread, fastest of 40)</th><th></th></tr>{variants}
<tr><td>Keras (reference)</td><td>{_pct(metrics["keras"]["accuracy"])}</td><td>{_pct(metrics["keras"]["macro_f1"])}</td><td>–</td><td>–</td><td>–</td><td></td></tr></table>
<p class="meta">Served: {esc(str(metrics.get("served_variant", "")))}, {esc(str(metrics.get("served_because", "")))}</p>
<h2>Per class (served model)</h2>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>test images</th></tr>{rows}</table>
<h2>Per-class thresholds (validation split)</h2>
{thresholds_html(manifest.get("thresholds"))}
{attributes_html(metrics.get("attributes"))}
<h2>Charts</h2>{charts}
<h2>Data</h2>
<p class="meta">Source {esc(metrics.get("source", ""))} · split {esc(str(metrics.get("split_counts", {})))} · seed {metrics.get("seed")} ·
fingerprint <code>{esc(manifest.get("training_data", {}).get("fingerprint", "")[:16])}</code> · skipped rows: {skipped}</p>
</body></html>
"""
