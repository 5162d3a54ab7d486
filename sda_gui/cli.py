"""Command line: ``python -m sda_gui simulate | train | assimilate | evaluate | bench``.

The ``assimilate`` contract is fixed by DESIGN.md §4; other tools rely on it.
Bad input ends with one ``error: …`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


class CliError(Exception):
    pass


def _parse_params(items) -> dict:
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--param expects key=value, got '{item}'")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _system(name, params):
    from sda_gui.core.systems import make_system

    try:
        return make_system(name, **params)
    except TypeError as exc:
        raise CliError(f"bad parameter for {name}: {exc}") from None


def _save_array_file(path: Path, data: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "w") as f:
            for key, value in data.items():
                if isinstance(value, str):
                    f.attrs[key] = value
                else:
                    f.create_dataset(key, data=value)
    else:
        import numpy as np

        np.savez(path, **{k: (np.array(v) if isinstance(v, str) else v) for k, v in data.items()})


# simulate ------------------------------------------------------------------------------------
def cmd_simulate(args):
    from sda_gui.core.assimilation import resolve_device
    from sda_gui.core.datasets import save_trajectories

    system = _system(args.system, _parse_params(args.param))
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    shown = [0.0]

    def progress(done, total):
        if time.perf_counter() - shown[0] > 2 or done == total:
            shown[0] = time.perf_counter()
            print(f"state {done}/{total} (burn-in included)", file=sys.stderr, flush=True)

    x = system.simulate(args.trajectories, args.length, seed=args.seed, device=device, progress=progress)
    seconds = time.perf_counter() - t0
    save_trajectories(args.out, x, system, {"seed": args.seed, "seconds": seconds})
    print(f"simulated {tuple(x.shape)} {system.title} states in {seconds:.1f} s -> {args.out}")


# train ---------------------------------------------------------------------------------------
def _arch_from_args(args, system):
    from sda_gui.core.diffusion.training import default_arch

    arch = default_arch(system)
    if args.arch and args.arch != arch["name"]:
        arch = {"name": args.arch}
    if args.precondition is not None:
        arch["precondition"] = args.precondition
    for key in ("width", "depth", "kernel", "blocks", "emb"):
        value = getattr(args, key, None)
        if value is not None:
            arch[key] = value
    if args.channels:
        arch["channels"] = [int(c) for c in args.channels.split(",")]
    return arch


def cmd_train(args):
    from sda_gui.core.assimilation import resolve_device
    from sda_gui.core.datasets import load_trajectories
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.systems import make_system

    if args.data:
        data, meta = load_trajectories(args.data)
        name = meta.get("system") or args.system
        if not name:
            raise CliError("the data file names no system; pass --system")
        system = make_system(name, **meta.get("params", {}))
        data_seed = meta.get("seed")
    else:
        if not args.system:
            raise CliError("pass --system or --data")
        system = _system(args.system, _parse_params(args.param))
        device = resolve_device(args.device)
        print(f"simulating {args.trajectories} x {args.length} {system.title} states (seed {args.data_seed}) ...", flush=True)
        data = system.simulate(args.trajectories, args.length, seed=args.data_seed, device=device).cpu()
        data_seed = args.data_seed
    config = TrainConfig(k=args.k, arch=_arch_from_args(args, system), steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, weight_decay=args.weight_decay, val_fraction=args.val_fraction,
                         val_every=args.val_every, device=str(resolve_device(args.device)), seed=args.seed,
                         data_seed=data_seed, amp=args.amp, compile=args.compile, save_every=args.save_every)
    t0 = time.perf_counter()

    def progress(step, total, loss, val):
        if step % max(1, total // 20) == 0 or step == total:
            eta = (time.perf_counter() - t0) / max(step - start, 1) * (total - step)
            vtxt = f" val {val:.4f}" if val is not None else ""
            print(f"step {step}/{total} loss {loss:.4f}{vtxt} eta {eta:.0f} s", flush=True)

    if args.resume and args.init:
        raise CliError("pass either --resume (continue a run) or --init (start from a model's weights), not both")
    start = 0
    if args.resume:
        from sda_gui.core.diffusion.checkpoint import read_checkpoint

        start = int(read_checkpoint(args.resume).get("train_state", {}).get("step", 0))
    deadline = time.perf_counter() + args.time_limit if args.time_limit else None
    model, history = train_model(system, data, config, progress=progress, checkpoint_path=args.out,
                                 resume_from=args.resume, init_from=args.init,
                                 should_stop=(lambda: time.perf_counter() > deadline) if deadline else None)
    if history["stopped"]:
        print(f"time limit reached after {model.training_info['steps_done']} steps", flush=True)
    out = Path(args.out)
    if args.half:
        from sda_gui.core.diffusion.checkpoint import save_checkpoint

        if history["stopped"]:
            # keep the resumable fp32 file where --resume will look for it
            out = out.with_name(f"{out.stem}-half{out.suffix}")
        save_checkpoint(model, out, model.training_info, half=True)
    size = out.stat().st_size / 2 ** 20
    params = sum(p.numel() for p in model.net.parameters())
    print(f"trained {params / 1e6:.2f} M parameters in {history['seconds']:.1f} s; "
          f"last val loss {next((v for v in reversed(history['val']) if v is not None), None)}; saved {out} ({size:.1f} MiB)")


# assimilate ----------------------------------------------------------------------------------
def load_model_for(system_name: str, path, device):
    from sda_gui.core.diffusion.checkpoint import check_model_for_system, default_model_path, load_checkpoint
    from sda_gui.core.systems import make_system

    model = load_checkpoint(path or default_model_path(system_name, device), device)
    check_model_for_system(model, make_system(system_name, **model.system.get("params", {}))
                           if model.system.get("name") == system_name else make_system(system_name))
    return model


def cmd_assimilate(args):
    import numpy as np

    from sda_gui.core.assimilation import assimilate, resolve_device
    from sda_gui.core.observation import Observation

    device = resolve_device(args.device)
    obs = Observation.load(args.observations)
    model = load_model_for(args.system, args.model, device)
    obs.validate(model.state_shape)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(step, total, _):
        if not args.quiet and (time.perf_counter() - last[0] > 2 or step == total):
            last[0] = time.perf_counter()
            print(f"step {step}/{total}", file=sys.stderr, flush=True)

    samples = assimilate(model, obs, args.samples, steps=args.steps, corrections=args.corrections,
                         guidance=args.guidance, tau=args.tau, gamma=args.gamma, device=device, seed=args.seed,
                         progress=progress, preview_every=10 ** 9)
    seconds = time.perf_counter() - t0
    settings = {"system": args.system, "samples": args.samples, "steps": args.steps, "corrections": args.corrections,
                "guidance": args.guidance, "tau": args.tau, "gamma": args.gamma, "seed": args.seed,
                "device": str(device), "model": str(args.model or "default"), "k": model.k, "seconds": seconds}
    _save_array_file(Path(args.out), {"samples": samples.numpy().astype(np.float32), "settings": json.dumps(settings)})
    print(f"{args.samples} samples of {obs.length} states in {seconds:.2f} s on {device} -> {args.out}")


# evaluate ------------------------------------------------------------------------------------
def cmd_evaluate(args):
    from sda_gui.core.assimilation import resolve_device
    from sda_gui.core.evaluation import run_evaluation, write_report
    from sda_gui.core.systems import make_system

    if args.system != "lorenz63":
        raise CliError("evaluate reproduces the paper's Lorenz-63 protocol; use --system lorenz63")
    device = resolve_device(args.device)
    system = make_system("lorenz63")
    models = {}
    for path in args.models or [None]:
        model = load_model_for("lorenz63", path, device)
        models[Path(path).stem if path else "shipped"] = model
    corrections = [int(c) for c in args.corrections.split(",")]
    t0 = time.perf_counter()
    rows = run_evaluation(system, models, corrections, n_cases=args.cases, samples=args.samples,
                          particles=args.particles, steps=args.steps, tau=args.tau, gamma=args.gamma,
                          guidance=args.guidance, device=device, seed=args.seed,
                          protocols=args.protocols.split(","), log=lambda s: print(s, flush=True))
    paths = write_report(rows, args.out_dir)
    print(f"evaluation took {time.perf_counter() - t0:.0f} s; wrote {', '.join(str(p) for p in paths.values())}")


# bench ---------------------------------------------------------------------------------------
def cmd_bench(args):
    from sda_gui import bench

    return bench.run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sda_gui", description="SDA Studio command line")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate trajectories of a system into an HDF5 file")
    s.add_argument("--system", required=True)
    s.add_argument("--param", action="append", help="system parameter key=value (repeatable), e.g. forcing=8")
    s.add_argument("--trajectories", type=int, default=16)
    s.add_argument("--length", type=int, default=1024)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_simulate)

    t = sub.add_parser("train", help="train a local score model")
    t.add_argument("--system")
    t.add_argument("--param", action="append", help="system parameter key=value (repeatable)")
    t.add_argument("--data", help="trajectory file (.h5/.npz/.npy); simulated when absent")
    t.add_argument("--trajectories", type=int, default=1024, help="simulated training trajectories")
    t.add_argument("--length", type=int, default=1024, help="states per simulated trajectory")
    t.add_argument("--data-seed", type=int, default=0)
    t.add_argument("--k", type=int, default=2, help="window half-width: windows of 2k+1 states")
    t.add_argument("--arch", choices=["resmlp", "ringconv", "unet"])
    t.add_argument("--precondition", action=argparse.BooleanOptionalAction, default=None,
                   help="the network predicts the clean window (EDM scalings); default: on for the U-Net")
    t.add_argument("--width", type=int)
    t.add_argument("--depth", type=int)
    t.add_argument("--kernel", type=int)
    t.add_argument("--blocks", type=int)
    t.add_argument("--emb", type=int)
    t.add_argument("--channels", help="U-Net channels, e.g. 64,128,256")
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=1e-3)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--val-every", type=int, default=1000)
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--amp", action="store_true", help="bf16 mixed precision (CUDA)")
    t.add_argument("--compile", action="store_true", help="torch.compile the network")
    t.add_argument("--save-every", type=int, default=0, help="write a resumable checkpoint every n steps")
    t.add_argument("--resume", help="resume from a resumable checkpoint")
    t.add_argument("--init", help="start from the weights of this model (same system; its window and "
                                  "architecture are used): fine-tuning with a fresh optimiser")
    t.add_argument("--half", action="store_true",
                   help="store the final weights in float16 (a run stopped by --time-limit keeps its resumable "
                        "file at --out and writes the float16 copy to OUT-half.pt)")
    t.add_argument("--time-limit", type=float, help="stop after this many seconds (the model so far is saved)")
    t.add_argument("--out", required=True)
    t.set_defaults(func=cmd_train)

    a = sub.add_parser("assimilate", help="posterior trajectory samples given observations")
    a.add_argument("--system", required=True)
    a.add_argument("--observations", required=True, help="OBS.npz or .h5 (mask, values, std[, operator])")
    a.add_argument("--samples", type=int, required=True)
    a.add_argument("--steps", type=int, required=True)
    a.add_argument("--corrections", type=int, required=True)
    a.add_argument("--guidance", choices=["sda", "dps", "mmps"], default="sda")
    a.add_argument("--tau", type=float, default=0.25)
    a.add_argument("--gamma", type=float, default=1e-2)
    a.add_argument("--model", help="checkpoint (default: the shipped model for the system)")
    a.add_argument("--device", default="auto")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--quiet", action="store_true")
    a.add_argument("--out", required=True)
    a.set_defaults(func=cmd_assimilate)

    e = sub.add_parser("evaluate", help="the paper's Lorenz-63 accuracy protocol (Figure 3)")
    e.add_argument("--system", default="lorenz63")
    e.add_argument("--models", nargs="*", help="checkpoints to compare (default: the shipped model)")
    e.add_argument("--corrections", default="0,1,2")
    e.add_argument("--cases", type=int, default=6)
    e.add_argument("--samples", type=int, default=1024)
    e.add_argument("--particles", type=int, default=16384)
    e.add_argument("--steps", type=int, default=256)
    e.add_argument("--tau", type=float, default=0.25)
    e.add_argument("--gamma", type=float, default=1e-2)
    e.add_argument("--guidance", choices=["sda", "dps", "mmps"], default="sda")
    e.add_argument("--protocols", default="sparse,dense")
    e.add_argument("--device", default="auto")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out-dir", default="out/evaluation")
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("bench", help="speed benchmarks (print numbers)")
    b.add_argument("what", choices=["assimilate", "train", "solver", "case", "gui"],
                   help="case: the paper's Kolmogorov assimilation case with quality figures")
    b.add_argument("--system", default="lorenz63")
    b.add_argument("--model")
    b.add_argument("--samples", type=int, default=1024)
    b.add_argument("--length", type=int, default=65)
    b.add_argument("--steps", type=int, default=256)
    b.add_argument("--corrections", default="0,1,2")
    b.add_argument("--guidance", default="sda")
    b.add_argument("--device", default="auto")
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--resolution", type=int, default=256)
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--frames", type=int, default=600)
    b.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="replay each network call as a CUDA graph on CUDA (default: on)")
    b.add_argument("--amp", action="store_true", help="bf16 autocast of the network on CUDA (case)")
    b.add_argument("--window-split", action=argparse.BooleanOptionalAction, default=True,
                   help="differentiate only the windows of observed states (default: on)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import torch

        from sda_gui.core.assimilation import Cancelled, DeviceError
        from sda_gui.core.datasets import DatasetError
        from sda_gui.core.diffusion.checkpoint import CheckpointError
        from sda_gui.core.observation import ObservationError

        expected = (CliError, ObservationError, CheckpointError, DatasetError, DeviceError, ValueError,
                    FloatingPointError, FileNotFoundError, OSError, torch.cuda.OutOfMemoryError)
        try:
            return args.func(args) or 0
        except torch.cuda.OutOfMemoryError:
            print("error: the GPU ran out of memory; use fewer samples or --device cpu", file=sys.stderr)
            return 2
        except expected as exc:
            print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
            return 2
        except Cancelled:
            print("error: cancelled", file=sys.stderr)
            return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
