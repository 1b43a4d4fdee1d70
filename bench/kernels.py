"""``python -m bench.kernels MODEL.tflite...``: one model's bare ``invoke()``
time on one thread with LiteRT's default XNNPACK delegate, with the builtin
kernels only, and with the reference kernels: shows whether a model runs on
XNNPACK and what each kernel set costs (how the int8 model was found slower
than float32 here: README, "Why int8 is slower here").

Prints one line per model: the fastest and the median of ``--calls`` calls,
in milliseconds (the fastest is the most repeatable figure on a shared
machine: other processes only ever add time).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def invoke_times(model_bytes: bytes, resolver: str, calls: int) -> tuple[float, float]:
    """(fastest, median) bare invoke() in ms on one thread with ``resolver``
    (a name of ai_edge_litert's OpResolverType: AUTO, BUILTIN_WITHOUT_DEFAULT_DELEGATES, BUILTIN_REF)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=model_bytes, num_threads=1, experimental_op_resolver_type=getattr(OpResolverType, resolver)
    )
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.random.default_rng(0).integers(0, 256, detail["shape"]).astype(detail["dtype"]))
    interpreter.invoke()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        interpreter.invoke()
        samples.append(time.perf_counter() - start)
    return round(min(samples) * 1000, 2), round(float(np.median(samples)) * 1000, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.kernels", description=__doc__)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--calls", type=int, default=60, help="calls per kernel set (reference kernels: a sixth)")
    args = p.parse_args(argv)
    print(f"{'model':<40} {'XNNPACK min/median':>20} {'builtin min/median':>20} {'reference min':>14}")
    for path in args.models:
        data = path.read_bytes()
        xnn = invoke_times(data, "AUTO", args.calls)
        builtin = invoke_times(data, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", args.calls)
        ref = invoke_times(data, "BUILTIN_REF", max(3, args.calls // 6))
        print(f"{path.name:<40} {xnn[0]:>9} / {xnn[1]:<8} {builtin[0]:>9} / {builtin[1]:<8} {ref[0]:>14}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
