"""Time the SCA network against T and width, beside its multiply-accumulate count.

Measures, for each (width, T), the wall time of

- inference: one forward pass on a batch of images (no gradient);
- a training step: forward, cross-entropy backward through the unrolled
  steps, and an Adam update;

and the same for the same-width MLP (``robustlearn.networks.MLP`` with one
hidden layer: the paper's baseline). Every T runs with the default inner
gradient (``"auto"``); at T = 8 each implementation (the closed form, the
closed form with B^T B formed once per call, autograd) is timed as well. Configurations are timed
interleaved, round after round, and the median over rounds is reported. Times
are the process's CPU time (``time.process_time``, one thread), not wall time:
on a shared, overloaded machine wall time mostly measures how often the
process is descheduled, which penalises long operations more than short ones. The target of issue 10
is inference at T = 8 within 3x the same-width MLP.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_sca.py \
        [--widths 256 512 2048] [--Ts 0 1 4 8 16] [--rounds 5] [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from robustlearn.networks import MLP
from robustlearn.plugins.sca import SCANetwork, sca_macs
from robustlearn.plugins.sca.layer import inner_gradient_for

SHAPE = (1, 28, 28)
D = 784


def build(kind, width, T, inner_gradient="auto"):
    torch.manual_seed(0)
    if kind == "mlp":
        return MLP(D, (width,), 10)
    return SCANetwork(SHAPE, 10, width=width, T=T, inner_gradient=inner_gradient)


def time_inference(model, x):
    model.eval()
    with torch.no_grad():
        start = time.process_time()
        model(x)
    return time.process_time() - start


def time_training_step(model, x, y, optimizer):
    model.train()
    start = time.process_time()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.process_time() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[256, 512])
    p.add_argument("--Ts", type=int, nargs="+", default=[0, 1, 4, 8, 16])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", default="benchmarks/results/sca")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    x = torch.rand(args.batch, *SHAPE)
    y = torch.randint(0, 10, (args.batch,))
    configs = []
    for width in args.widths:
        configs.append(("mlp", width, 0, "-"))
        for T in args.Ts:
            configs.append(("sca", width, T, "auto"))
        for method in ("closed-form", "gram", "autograd"):
            configs.append(("sca", width, 8, method))
    models = {c: build(c[0], c[1], c[2], c[3]) for c in configs}
    optimizers = {c: torch.optim.Adam(m.parameters(), lr=1e-3) for c, m in models.items()}
    for c in configs:  # warm-up
        time_inference(models[c], x)
        time_training_step(models[c], x, y, optimizers[c])
    times = {c: {"inference": [], "train_step": []} for c in configs}
    for _ in range(args.rounds):
        for c in configs:
            times[c]["inference"].append(time_inference(models[c], x))
            times[c]["train_step"].append(time_training_step(models[c], x, y, optimizers[c]))
    rows = []
    for c in configs:
        kind, width, T, grad = c
        mlp = times[("mlp", width, 0, "-")]
        inference = float(np.median(times[c]["inference"]))
        train = float(np.median(times[c]["train_step"]))
        macs = (D * width + width * 10) if kind == "mlp" else width * 10 + sca_macs(
            D, width, T, "closed-form" if grad == "autograd" else grad, args.batch)
        if grad == "auto":
            grad = f"auto ({inner_gradient_for(D, width, T, args.batch)})"
        rows.append(dict(
            model=kind, width=width, T=T, inner_gradient=grad, macs_per_sample=macs,
            macs_vs_mlp=macs / (D * width + width * 10),
            inference_ms_per_batch=1e3 * inference,
            train_step_ms_per_batch=1e3 * train,
            inference_vs_mlp=inference / float(np.median(mlp["inference"])),
            train_vs_mlp=train / float(np.median(mlp["train_step"])),
        ))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(
        {"args": vars(args), "torch": torch.__version__, "rows": rows}, indent=1))
    lines = [f"Batch {args.batch}, one thread, CPU time, median of {args.rounds} interleaved "
             "rounds.", "",
             "| model | width | T | inner gradient | MACs/sample | MACs x MLP | inference ms | "
             "x MLP | train step ms | x MLP |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['width']} | {r['T']} | {r['inner_gradient']} | "
            f"{r['macs_per_sample'] / 1e6:.2f}M | {r['macs_vs_mlp']:.1f} | "
            f"{r['inference_ms_per_batch']:.1f} | "
            f"{r['inference_vs_mlp']:.1f} | {r['train_step_ms_per_batch']:.1f} | "
            f"{r['train_vs_mlp']:.1f} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
