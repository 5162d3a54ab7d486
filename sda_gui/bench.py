"""Benchmarks behind ``python -m sda_gui bench …``: they print numbers, nothing is asserted.

- ``assimilate``: wall time of posterior sampling for each ``C`` (after a warm-up run),
  with ms per step, CPU seconds per step (this process, all its threads) and, on CUDA,
  peak memory. ``--no-fast-paths`` runs the unoptimised network path in one batch of
  windows (for comparisons), ``--memory-budget`` sets the chunks' budget, ``--profile``
  prints where one run's CPU time goes (``torch.profiler``, by operator).
- ``train``: steps per second of training a fresh model on simulated data.
- ``solver``: simulated time units per second of the Kolmogorov solver.
- ``case``: the paper's Kolmogorov assimilation case: quality figures, ms per step,
  FLOPs of a step (``1 + C`` guided calls, counted by ``torch.utils.flop_counter``), the rate reached and,
  on CUDA, peak memory.
- ``gui``: animation frames per second and the worst event-loop stall while sampling.
- ``threads``: seconds per sampler step with 1, 2, … up to all cores' torch threads (the
  measurement behind ``--threads auto``).
- ``classical``: our EnKF and LETKF against DAPPER's (``sda_gui.bench_classical``).

``run(args)`` is called by the ``bench`` subcommand after ``cli.validate`` has checked
the arguments and filled the per-benchmark defaults; the numbers go to stdout.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sda_gui.core.assimilation import assimilate, resolve_device
from sda_gui.core.diffusion.checkpoint import load_model_for
from sda_gui.core.observation import every_nth_state_mask, synthesize
from sda_gui.core.systems import make_system

__all__ = ["run", "bench_assimilate", "bench_threads", "guided_call_flops"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _observation(system, length, seed=0):
    truth = system.simulate(1, length, seed=seed)[0].numpy()
    if system.name == "lorenz63":
        mask = every_nth_state_mask(length, system.state_shape, 8, [0])
        return synthesize(truth, mask, 0.4, seed=seed)
    if system.name == "kolmogorov":
        mask = np.zeros((length, 2, system.state_shape[1] // 8, system.state_shape[2] // 8), dtype=bool)
        mask[::4] = True
        return synthesize(truth, mask, 0.1, seed=seed, operator="coarsen:8")
    rng = np.random.default_rng(seed)
    return synthesize(truth, rng.random((length, *system.state_shape)) < 0.2, 1.0, seed=seed)


class unoptimised:
    """Within it, ``model`` samples by the plain path: no fused network, one batch of windows."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        from sda_gui.core.diffusion.networks import ResMLP

        self._fuse, ResMLP.fuse_shared_time = ResMLP.fuse_shared_time, False
        self.model.plan_chunks = self._one_batch
        return self.model

    def _one_batch(self, *args, **kwargs):
        self.model.max_windows = self.model.max_graph_windows = None
        return None

    def __exit__(self, *exc):
        from sda_gui.core.diffusion.networks import ResMLP

        ResMLP.fuse_shared_time = self._fuse
        del self.model.plan_chunks
        self.model.max_windows = self.model.max_graph_windows = None


def bench_assimilate(model, system, samples, length, steps, corrections, guidance="sda", device="cpu", repeats=1,
                     cuda_graph=True, window_split=True, fast_paths=True, memory_budget_bytes=None, profile=None):
    """Rows ``{C, seconds, ms_per_step, cpu_s_per_step[, peak_mem_gib]}``; ``profile`` (a callable
    taking the profiler's table) receives where the CPU time of the first measured run went."""
    import contextlib

    device = resolve_device(device)
    obs = _observation(system, length)
    options = dict(guidance=guidance, device=device, cuda_graph=cuda_graph, window_split=window_split,
                   memory_budget_bytes=memory_budget_bytes)
    plain = contextlib.nullcontext() if fast_paths else unoptimised(model)
    rows = []
    with plain:
        assimilate(model, obs, min(samples, 8), steps=2, corrections=1, **options)  # warm-up
        for c in corrections:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times, cpu = [], []
            for r in range(repeats):
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                run = lambda: assimilate(model, obs, samples, steps=steps, corrections=c, seed=r,  # noqa: E731
                                         preview_every=10 ** 9, **options)
                if profile is not None and r == 0 and c == corrections[0]:
                    from torch.profiler import ProfilerActivity, profile as torch_profile

                    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                        run()
                    profile(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
                    t0, c0 = time.perf_counter(), time.process_time()   # the profiled run is not timed
                run()
                _sync(device)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            best = min(times)
            row = {"C": c, "seconds": best, "ms_per_step": 1000 * best / steps, "cpu_s_per_step": min(cpu) / steps}
            if device.type == "cuda":
                row["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
            rows.append(row)
    return rows


def guided_call_flops(model, observation, samples: int, device, window_split=True) -> int:
    """FLOPs of one guided network call over a whole trajectory batch: forward and backward.

    SDA and DPS guidance cost exactly this per call (MMPS adds its conjugate-gradient
    products); a sampler step makes ``1 + C`` such calls. The backward pass starts from
    the observed states, as a guidance's does, so windows left out of it by
    ``window_split`` are left out of the count.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from sda_gui.core.diffusion.local_score import window_split as split_for

    observed = observation.observed_states()
    split = split_for(observation.length, model.k, observed, device, model.fold) if window_split else None
    x = torch.randn((samples, observation.length, *model.state_shape), device=device, requires_grad=True)
    t = torch.tensor(0.5, device=device)
    # A guidance asks autograd for the gradient of x alone, which skips the weights'
    # gradients (a third of a full backward pass). The counter's module hooks cannot
    # follow torch.autograd.grad, so backward() runs with the weights frozen instead.
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        with FlopCounterMode(display=False) as counter:
            eps = model(x, t, split)
            eps.index_select(1, torch.as_tensor(observed, device=device)).square().sum().backward()
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def bench_kolmogorov_case(args, device, out=print):
    """The paper's Kolmogorov case: every 4th state observed through coarsen:8, σ = 0.1."""
    from sda_gui.core import metrics

    model = load_model_for("kolmogorov", args.model, device)
    system = make_system("kolmogorov", **dict(model.system.get("params", {}), resolution=args.resolution))
    truth = system.simulate(1, args.length, seed=7, device=device)[0].cpu()
    size = system.state_shape[-1] // 8
    mask = np.zeros((args.length, 2, size, size), dtype=bool)
    mask[::4] = True
    obs = synthesize(truth.numpy(), mask, 0.1, seed=7, operator="coarsen:8")
    corrections = int(str(args.corrections).split(",")[0])
    run = dict(corrections=corrections, guidance=args.guidance, device=device, preview_every=10 ** 9,
               cuda_graph=args.cuda_graph, amp=args.amp, window_split=args.window_split)
    if device.type == "cuda":
        assimilate(model, obs, args.samples, steps=2, **run)  # warm-up: cuDNN's algorithm search, lazy loading
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    samples = assimilate(model, obs, args.samples, steps=args.steps, **run)
    _sync(device)
    seconds = time.perf_counter() - t0
    flops = (1 + corrections) * guided_call_flops(model.to(device), obs, args.samples, device, args.window_split)
    mem = f", peak {torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB" if device.type == "cuda" else ""
    clim = float(np.sqrt(np.mean((truth.numpy() - model.mean.cpu().numpy()) ** 2)))
    params = sum(p.numel() for p in model.net.parameters())
    out(f"kolmogorov case: L={args.length}, {args.samples} sample(s), {args.steps} steps, C={corrections}, "
          f"{args.guidance}, {params / 1e6:.2f} M parameters, truth simulated at {args.resolution}^2, "
          f"CUDA graph {'on' if args.cuda_graph else 'off'}, {'bf16' if args.amp else 'fp32/TF32'}, "
          f"window split {'on' if args.window_split else 'off'}")
    out(f"  time: {seconds:.1f} s ({1000 * seconds / args.steps:.0f} ms/step, {flops / 1e9:.1f} GFLOP/step, "
          f"{flops * args.steps / seconds / 1e12:.2f} TFLOP/s{mem})")
    out(f"  residual std of A(x) - y: {metrics.residual_std(samples, obs):.3f} (σ_y = 0.1)")
    out(f"  RMSE of the posterior mean: {metrics.rmse(samples, truth):.3f}; "
          f"climatology (the data's mean field): {clim:.3f}; spread {metrics.spread(samples):.3f}")
    out(f"  one-step physical residual: samples {metrics.physical_residual(samples, system):.3f}, "
          f"truth {metrics.physical_residual(truth[None], system):.3f}")


def bench_threads(model, system, samples, length, steps, corrections, guidance="sda", device="cpu",
                  max_threads=None) -> list[dict]:
    """Seconds per sampler step with 1 … ``max_threads`` torch threads (after a warm-up at each count)."""
    import os

    device = resolve_device(device)
    obs = _observation(system, length)
    before = torch.get_num_threads()
    top = max_threads or len(os.sched_getaffinity(0))
    rows = []
    try:
        for n in range(1, top + 1):
            torch.set_num_threads(n)
            assimilate(model, obs, samples, steps=1, corrections=corrections, guidance=guidance, device=device)
            _sync(device)
            t0 = time.perf_counter()
            assimilate(model, obs, samples, steps=steps, corrections=corrections, guidance=guidance, device=device,
                       preview_every=10 ** 9)
            _sync(device)
            rows.append({"threads": n, "seconds_per_step": (time.perf_counter() - t0) / steps})
    finally:
        torch.set_num_threads(before)
    return rows


def run(args, say=None) -> int:
    import os

    out = say.result if say is not None else print
    device = resolve_device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}; "
        f"torch {torch.__version__}; threads {torch.get_num_threads()} of {os.cpu_count()} cores; load {load:.2f}")
    if args.what == "assimilate":
        model = load_model_for(args.system, args.model, device)
        system = make_system(args.system, **model.system.get("params", {}))
        corrections = [int(c) for c in str(args.corrections).split(",")]
        fast = getattr(args, "fast_paths", True)
        budget = getattr(args, "memory_budget", None)
        budget = None if budget is None else int(budget * 2 ** 20)
        rows = bench_assimilate(model, system, args.samples, args.length, args.steps, corrections, args.guidance,
                                device, args.repeats, args.cuda_graph, args.window_split, fast, budget,
                                out if getattr(args, "profile", False) else None)
        chunks = f"{model.max_windows} windows per chunk" if fast else "unoptimised path, one batch"
        out(f"{args.system}: {args.samples} samples x {args.length} states, {args.steps} steps, "
            f"guidance {args.guidance}, k={model.k}, CUDA graph {'on' if args.cuda_graph else 'off'}, "
            f"window split {'on' if args.window_split else 'off'}, "
            f"{sum(p.numel() for p in model.net.parameters()) / 1e6:.2f} M params, {chunks}")
        for r in rows:
            mem = f", peak {r['peak_mem_gib']:.2f} GiB" if "peak_mem_gib" in r else ""
            out(f"  C={r['C']}: {r['seconds']:.2f} s ({r['ms_per_step']:.1f} ms/step, "
                f"{r['cpu_s_per_step']:.3f} CPU-s/step{mem})")
    elif args.what == "threads":
        model = load_model_for(args.system, args.model, device)
        system = make_system(args.system, **model.system.get("params", {}))
        c = int(str(args.corrections).split(",")[0])
        out(f"{args.system}: {args.samples} samples x {args.length} states, {args.steps} steps, C={c}, "
            f"guidance {args.guidance}, on {device}")
        for r in bench_threads(model, system, args.samples, args.length, args.steps, c, args.guidance, device,
                               args.max_threads):
            out(f"  {r['threads']} thread(s): {r['seconds_per_step']:.3f} s/step")
    elif args.what == "train":
        from sda_gui.core.diffusion.training import TrainConfig, train_model

        system = make_system(args.system)
        data = system.simulate(64, 256, seed=0, device=device)
        config = TrainConfig(steps=args.steps, device=str(device), val_every=10 ** 9)
        t0 = time.perf_counter()
        train_model(system, data, config)
        _sync(device)
        seconds = time.perf_counter() - t0
        out(f"{args.system}: {args.steps} training steps (batch {config.batch_size}) in {seconds:.2f} s "
            f"= {args.steps / seconds:.0f} steps/s")
    elif args.what == "solver":
        system = make_system("kolmogorov", resolution=args.resolution, burn_in=0)
        system.simulate(args.batch, 2, seed=0, device=device)
        _sync(device)
        t0 = time.perf_counter()
        n_states = 10
        system.simulate(args.batch, n_states, seed=1, device=device)
        _sync(device)
        seconds = time.perf_counter() - t0
        units = (n_states - 1) * system.dt * args.batch
        out(f"kolmogorov {args.resolution}^2, batch {args.batch}: {units / seconds:.2f} simulated time units/s "
            f"({(n_states - 1) * system.dt / seconds:.2f} per trajectory)")
    elif args.what == "case":
        bench_kolmogorov_case(args, device, out)
    elif args.what == "classical":
        from sda_gui.bench_classical import bench_classical

        bench_classical(members=args.members, length=args.length, repeats=args.repeats, device=device, echo=out)
    elif args.what == "gui":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from sda_gui.app.bench import run_gui_benchmarks

        for key, value in run_gui_benchmarks(quick=args.frames < 600).items():
            out(f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0
