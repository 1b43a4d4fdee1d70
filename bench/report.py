"""Tables for the terminal and Markdown for docs/benchmarks.md; the targets
of issue #7, reported as figures and ratios (never asserted)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def heading(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = _cells([headers, *rows])
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = _cells(rows)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(out)


# -- sections -------------------------------------------------------------------


def _training_rows(t: dict) -> list[list[Any]]:
    rows = [[stage, seconds] for stage, seconds in t["stages_s"].items()]
    rows.append(["(process start, imports, other)", t["startup_and_other_s"]])
    rows.append(["total wall time", t["wall_s"]])
    return rows


def training_table(t: dict) -> None:
    print(table(["stage", "seconds"], _training_rows(t)))
    print(f"peak RSS {t['peak_rss_mb']} MB, CPU {t['cpu_s']} s, test accuracy {t.get('test_accuracy')}")


_INFERENCE_HEADERS = ["path", "min ms", "p50 ms", "p99 ms", "images/s"]


def _inference_rows(r: dict) -> list[list[Any]]:
    return [[name, v.get("min_ms", "-"), v["p50_ms"], v["p99_ms"], v["images_per_s"]] for name, v in r["rows"].items()]


def _overhead_text(r: dict, variant: str) -> str:
    """``min 1.02x / p50 1.03x / paired 1.02x`` (interleaved runs: fastest
    calls, medians, median of the per-round ratios) or the older p50 ratio alone."""
    o = r.get(f"{variant}_overhead")
    if not o:
        return f"p50 {r[f'{variant}_overhead_ratio']}x"
    return f"min {o['min_ratio']}x / p50 {o['median_ratio']}x / paired {o.get('paired_median_ratio', '-')}x"


def inference_summary(r: dict) -> None:
    print(table(_INFERENCE_HEADERS, _inference_rows(r)))
    variants = r.get("variants", ["int8", "float32"])
    print(
        "Classifier / bare invoke (measured in turn in one loop): "
        + ", ".join(f"{v} {_overhead_text(r, v)}" for v in variants)
        + "; faster than Keras model.predict: "
        + ", ".join(f"{v} {r['speedup_vs_keras_predict'][v]}x" for v in variants)
    )
    if r.get("served_variant"):
        print(f"served: {r['served_variant']} ({r.get('served_because', '')}); fastest here: {r.get('fastest_variant')}")


def _http_rows(r: dict) -> list[list[Any]]:
    rows = []
    for variant in ("litert", "tensorflow"):
        for run in r[variant]["runs"]:
            rows.append(
                [
                    variant,
                    run["image"],
                    run["connections"],
                    run["p50_ms"],
                    run["p95_ms"],
                    run["p99_ms"],
                    run["requests_per_s"],
                    run["errors"],
                ]
            )
    return rows


_HTTP_HEADERS = ["server", "image", "concurrency", "p50 ms", "p95 ms", "p99 ms", "req/s", "errors"]


def _start_rows(r: dict) -> list[list[Any]]:
    return [
        [
            v,
            r[v]["listening_s"],
            r[v]["cold_start_s"],
            r[v]["pss_after_first_mb"],
            r[v]["peak_pss_mb"],
            " + ".join(f"{mb:.0f}" for mb in r[v]["peak_rss_by_process_mb"]),
        ]
        for v in ("litert", "tensorflow")
    ]


_START_HEADERS = [
    "server",
    "port open s",
    "cold start s",
    "PSS after 1st prediction MB",
    "peak PSS MB",
    "peak RSS MB (master + worker)",
]


def http_summary(r: dict) -> None:
    print(table(_HTTP_HEADERS, _http_rows(r)))
    print(table(_START_HEADERS, _start_rows(r)))


def _pipeline_rows(r: dict) -> list[list[Any]]:
    lat = r["latency"]
    return [
        ["uploads", r["uploads"]],
        ["first upload -> last record, s", r["wall_s"]],
        ["images/s", r["images_per_s"]],
        ["upload phase, s", r["upload_phase_s"]],
        ["per-file latency p50 / p95 / p99, ms", f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['p99_ms']:.0f}"],
        ["statuses", ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))],
    ]


def _cpu_rows(r: dict) -> list[list[Any]]:
    wall = r["wall_s"]
    count = r["uploads"]
    rows = sorted(r["cpu_s"].items(), key=lambda kv: kv[1], reverse=True)
    return [[name, seconds, round(seconds / wall, 2), round(1000 * seconds / count, 1)] for name, seconds in rows]


_CPU_HEADERS = ["process", "CPU s", "cores busy", "CPU ms per image"]


def pipeline_summary(r: dict) -> None:
    print(table(["pipeline", "value"], _pipeline_rows(r)))
    print(table(_CPU_HEADERS, _cpu_rows(r)))
    print(table(["function step", "mean ms"], list(r["function_step_ms"].items())))
    print(r["bound_by"])


# -- targets --------------------------------------------------------------------


_DECODE_HEADERS = ["input", "file MiB", "declared MP", "outcome", "decode ms", "peak above start MiB", "process peak MiB"]


def _decode_rows(r: dict) -> list[list[Any]]:
    keys = ("name", "file_mib", "declared_mp", "outcome", "decode_ms", "peak_extra_mib", "process_peak_mib")
    return [[row[k] for k in keys] for row in r["rows"]]


def _decode_verdict(r: dict) -> str:
    c = r.get("costliest")
    memory = r.get("function_memory_mib")
    if not c or not memory:
        return "No function memory setting was found in terraform/variables.tf to compare with."
    serving = r.get("serving_mib")
    held = (
        f"serving {serving} MiB (peak PSS, HTTP section) + that decode = {c['held_mib']} MiB"
        if serving
        else (f"that decode alone (no HTTP section in this run: add serving's PSS) = {c['held_mib']} MiB")
    )
    return (
        f"Costliest accepted input: {c['input']}, {c['peak_extra_mib']} MiB above the process's start. "
        f"Held at once, with one such decode per instance: {held} of the functions' {memory} MiB "
        f"(terraform/variables.tf), {c['margin_mib']} MiB to spare."
    )


def decode_summary(r: dict) -> None:
    print(table(_DECODE_HEADERS, _decode_rows(r)))
    print(_decode_verdict(r))


def _run(r: dict, variant: str, image: str, connections: int) -> dict | None:
    return next((x for x in r[variant]["runs"] if x["image"] == image and x["connections"] == connections), None)


def targets(results: dict) -> list[dict[str, Any]]:
    """Each target of issue #7 with the measured figure; 'met' is informative."""
    out: list[dict[str, Any]] = []

    def add(name: str, figure: float, target: str, met: bool) -> None:
        out.append({"target": name, "measured": figure, "goal": target, "met": bool(met)})

    http = results.get("http")
    if http:
        ours, tf = _run(http, "litert", "product", 1), _run(http, "tensorflow", "product", 1)
        if ours:
            add("warm predict p50, product JPEG, concurrency 1 (ms)", ours["p50_ms"], "<= 15", ours["p50_ms"] <= 15)
        if ours and tf:
            ratio = round(tf["p50_ms"] / ours["p50_ms"], 1)
            add("  ... faster than the TensorFlow variant (x)", ratio, ">= 10", ratio >= 10)
        cold = http["litert"]["cold_start_s"]
        add("cold start (s)", cold, "<= 0.5", cold <= 0.5)
        add("  ... faster than the TensorFlow variant (x)", http["cold_start_speedup"], ">= 8", http["cold_start_speedup"] >= 8)
        pss = http["litert"]["peak_pss_mb"]
        add("serving peak memory, PSS of master + worker (MB)", pss, "<= 150", pss <= 150)
        worker = max(http["litert"]["peak_rss_by_process_mb"])
        add("  ... peak RSS of the serving worker alone (MB)", worker, "<= 150", worker <= 150)
        add("  (TensorFlow variant peak PSS, MB)", http["tensorflow"]["peak_pss_mb"], "-", True)
    inference = results.get("inference")
    if inference:
        for variant in inference.get("variants", ["int8", "float32"]):
            overhead = inference.get(f"{variant}_overhead")
            if overhead:  # both the fastest calls and the medians of the interleaved loop
                worst = max(overhead["min_ratio"], overhead["median_ratio"])
                served = " (served)" if variant == inference.get("served_variant") else ""
                add(
                    f"Classifier / bare invoke(), {variant}{served}, min / p50 (x)",
                    _overhead_text(inference, variant),
                    "<= 1.1",
                    worst <= 1.1,
                )
            else:
                ratio = inference[f"{variant}_overhead_ratio"]
                add(f"Classifier / bare invoke(), {variant} (x)", ratio, "<= 1.1", ratio <= 1.1)
        if "served_is_fastest" in inference:
            add(
                f"served variant ({inference['served_variant']}) is the fastest bare invoke()",
                inference["fastest_variant"],
                inference["served_variant"],
                inference["served_is_fastest"],
            )
    return out


def targets_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    heading("targets (figures, not assertions)")
    print(table(["target", "measured", "goal", "met"], [[r["target"], r["measured"], r["goal"], r["met"]] for r in rows]))


def markdown(results: dict) -> str:
    m = results["machine"]
    parts = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, {m['system']}. "
        f"Model {results.get('model', {}).get('version', '-')}{' (quick run)' if results['quick'] else ''}. Each section gives the time "
        f"it was measured; the baselines of a section were measured in the same run as the section.",
    ]
    if "training" in results:
        t = results["training"]
        parts += [f"### Training job\n\nMeasured {t.get('measured_at', '-')}.", md_table(["stage", "seconds"], _training_rows(t))]
        parts.append(f"Peak RSS {t['peak_rss_mb']} MB, CPU {t['cpu_s']} s; `{t['command']}`.")
    if "inference" in results:
        r = results["inference"]
        parts += [
            f"### Inference (one core)\n\nMeasured {r.get('measured_at', '-')}.",
            md_table(_INFERENCE_HEADERS, _inference_rows(r)),
        ]
    if "http" in results:
        r = results["http"]
        parts += [
            f"### HTTP predict\n\nMeasured {r.get('measured_at', '-')}.",
            md_table(_HTTP_HEADERS, _http_rows(r)),
            md_table(_START_HEADERS, _start_rows(r)),
        ]
    if "pipeline" in results:
        r = results["pipeline"]
        parts += [
            f"### Pipeline\n\nMeasured {r.get('measured_at', '-')}.",
            md_table(["pipeline", "value"], _pipeline_rows(r)),
            md_table(_CPU_HEADERS, _cpu_rows(r)),
            md_table(["function step", "mean ms"], list(r["function_step_ms"].items())),
            r["bound_by"],
        ]
    if "decode" in results:
        r = results["decode"]
        parts += [
            f"### Decode (one upload, fresh process each)\n\nMeasured {r.get('measured_at', '-')}; median of {r['repeats']}.",
            md_table(_DECODE_HEADERS, _decode_rows(r)),
            _decode_verdict(r),
        ]
    if results.get("targets"):
        rows = [[r["target"], r["measured"], r["goal"], "yes" if r["met"] else "**no**"] for r in results["targets"]]
        parts += ["### Targets", md_table(["target", "measured", "goal", "met"], rows)]
    return "\n\n".join(parts) + "\n"
