"""Benchmark: how close the LSTM preset's net runs to this CPU's matrix-product rate.

`predict` on CPU is paced by its ensembles' nets (docs/performance.md). This script asks
whether the nets themselves leave speed on the table. On one torch thread, as each of the
engine's dask threads runs, it measures in the same run:

- the baseline: plain float32 matrix products of the shapes the net multiplies, batched as
  the engine batches windows (``upscale.bench.suite.WINDOWS_PER_BATCH``);
- the preset's net (``upscale.learn.nets.LSTMRegressor`` with the hyper-parameters of
  ``--config lstm``) on the same number of windows, with its matrix-product arithmetic
  counted, so its rate reads as a share of the baseline's;
- the same net under bfloat16 autocast, with its largest deviation from float32, because
  lower precision is the one lever left when the share is near 1.

It also prints how much arithmetic the recurrence could skip (the zero first state, and
each month's input product shared by the windows that hold it), the most that any
rewriting of the float32 net could gain.

Run: ``.venv/bin/python benchmarks/net_arithmetic.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from upscale.bench.suite import WINDOWS_PER_BATCH
from upscale.learn.config import load_train_config, preset_path
from upscale.learn.nets import NETS


def per_second(action: Callable[[], object], seconds: float) -> float:
    """Calls of ``action`` per second, over at least ``seconds`` after three warm-up calls."""
    for _ in range(3):
        action()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        action()
        calls += 1
    return calls / elapsed


def lstm_products(n_features: int, hidden: int, layers: int, memory: int) -> dict[str, int]:
    """Floating-point operations of the matrix products of one window, and the avoidable ones.

    Each layer multiplies its input (the drivers, then the layer below's state) and its own
    state by a ``(., 4 * hidden)`` gate matrix at every month of the window.
    """
    gates = 4 * hidden
    inputs = [n_features] + [hidden] * (layers - 1)
    total = sum(memory * 2 * (size + hidden) * gates for size in inputs)
    zero_state = layers * 2 * hidden * gates  # the first month's state product is of zeros
    shared_input = (memory - 1) * 2 * n_features * gates  # once per month, not per window
    return {"total": total, "avoidable": zero_state + shared_input}


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    config = load_train_config(preset_path("lstm"))
    hidden, layers = config.hyperparameters["hidden"], config.hyperparameters["layers"]
    n_features, memory, batch = len(config.features), config.memory, WINDOWS_PER_BATCH
    net = NETS["lstm"](n_features, len(config.targets), memory, **config.hyperparameters).eval()
    windows = torch.randn(batch, memory, n_features)
    flops = lstm_products(n_features, hidden, layers, memory)

    # The baseline multiplies what the net multiplies, month by month, with nothing else.
    operands = [
        (torch.randn(batch, size + hidden), torch.randn(size + hidden, 4 * hidden))
        for size in [n_features] + [hidden] * (layers - 1)
    ]

    def products() -> None:
        for _ in range(memory):
            for left, right in operands:
                left @ right

    matmul_rate = per_second(products, args.seconds) * batch * flops["total"] / 1e9
    net_windows = per_second(lambda: net(windows), args.seconds) * batch
    net_rate = net_windows * flops["total"] / 1e9
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_windows = per_second(lambda: net(windows), args.seconds) * batch
        low = net(windows).float()
    deviation = (low - net(windows)).abs().max().item()

    print(
        f"LSTM preset: {layers} layers of {hidden}, L = {memory}, {n_features} drivers; "
        f"{flops['total'] / 1e3:.0f} kFLOP of matrix products per window; "
        f"batches of {batch} windows; 1 torch thread"
    )
    print(f"  baseline: float32 matrix products   {matmul_rate:6.1f} GFLOP/s")
    print(
        f"  net, float32                        {net_rate:6.1f} GFLOP/s  "
        f"({net_windows / 1e3:.0f}k windows/s, {net_rate / matmul_rate:.2f}x the baseline)"
    )
    print(
        f"  net, bfloat16 autocast              {bf16_windows / 1e3:6.0f}k windows/s  "
        f"({bf16_windows / net_windows:.2f}x float32; largest deviation {deviation:.1e} "
        "in normalised units)"
    )
    avoidable = flops["avoidable"] / flops["total"]
    print(
        f"  avoidable arithmetic: {avoidable:.0%} (zero first state, shared input products); "
        f"a float32 rewrite gains at most {1 / (1 - avoidable):.2f}x"
    )


if __name__ == "__main__":
    main()
