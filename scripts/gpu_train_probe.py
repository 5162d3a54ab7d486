"""Training throughput of Kolmogorov U-Nets on a GPU, to size a time-limited run.

    PYTHONPATH=. python scripts/gpu_train_probe.py [--seconds 8]

For each (channels, blocks, batch, compile) it times full training steps (loss,
backward, AdamW) on random windows with bf16 autocast, after a warm-up, and prints
steps/s, windows/s and the step count that fits a given time budget.
"""

from __future__ import annotations

import argparse
import time

import torch

from sda_gui.core.diffusion.checkpoint import build_model
from sda_gui.core.diffusion.training import _dsm_loss
from sda_gui.core.systems import make_system


def probe(channels, blocks, batch, compile_, seconds, device="cuda"):
    system = make_system("kolmogorov")
    arch = {"name": "unet", "channels": channels, "blocks": blocks, "precondition": True, "sigma_data": 1.0}
    model = build_model(system, 2, arch).to(device)
    net = model.net
    if compile_:
        net.net.forward = torch.compile(net.net.forward)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, 5, *system.state_shape, device=device)

    def step():
        loss = _dsm_loss(net, model.schedule, x, gen, True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
        if n % 10 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    rate = n / (time.perf_counter() - t0)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    print(f"channels {channels} blocks {blocks} batch {batch} compile {compile_}: {params:.2f} M params, "
          f"warm-up {warm:.1f} s, {rate:.1f} steps/s, {rate * batch:.0f} windows/s, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=8)
    args = p.parse_args()
    for channels, blocks, batch, comp in [([64, 128, 256], 2, 32, False), ([64, 128, 256], 2, 128, False),
                                         ([64, 128, 256], 2, 128, True), ([48, 96, 192], 2, 128, False),
                                         ([64, 128, 256], 2, 256, False)]:
        torch.cuda.reset_peak_memory_stats()
        try:
            probe(channels, blocks, batch, comp, args.seconds)
        except Exception as exc:  # noqa: BLE001 - a probe reports and moves on
            print(f"channels {channels} batch {batch} compile {comp}: failed: {exc}", flush=True)


if __name__ == "__main__":
    main()
