"""``simulate``, ``observe`` and ``train``: trajectories into a file, observations of one, and a score
model trained on them.

Both receive the validated ``Plan`` (``cli.validate``): the system, device, any
data already read and checked, and the exact output path. Files are written
atomically by ``core`` (``save_trajectories``, ``save_checkpoint``).
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["cmd_simulate", "cmd_observe", "cmd_train"]


def cmd_simulate(args, plan, say):
    from sda_gui.core.datasets import save_trajectories

    system = plan.system
    say.detail(f"{system!r} on {plan.device}, seed {args.seed}")
    progress = say.progress("simulate", "states incl. burn-in")
    t0 = time.perf_counter()
    x = system.simulate(args.trajectories, args.length, seed=args.seed, device=plan.device,
                        progress=lambda done, total: progress(done, total))
    seconds = time.perf_counter() - t0
    from sda_gui.core.provenance import provenance

    meta = {"seed": args.seed, "seconds": seconds,
            "provenance": provenance(system=system, settings={"trajectories": args.trajectories, "length": args.length,
                                                              "device": str(plan.device)}, seeds={"seed": args.seed})}
    save_trajectories(plan.out, x, system, meta)
    say.result(f"simulated {tuple(x.shape)} {system.title} states in {seconds:.1f} s -> {plan.out}")


def cmd_observe(args, plan, say):
    from sda_gui.api import observe
    from sda_gui.core.netcdf import is_netcdf, write_observation_nc
    from sda_gui.core.provenance import provenance

    obs = observe(plan.truth, every_states=args.every_states, every_variables=args.every_variables,
                  density=args.density, operator=args.operator, std=args.std, seed=args.seed)
    if is_netcdf(plan.out):
        record = provenance(system=plan.system, data_path=args.truth,
                            settings={k: getattr(args, k) for k in ("trajectory", "every_states", "every_variables",
                                                                    "density", "operator", "std", "variable")},
                            seeds={"seed": args.seed})
        write_observation_nc(plan.out, obs, plan.system, record)
    else:
        obs.save(plan.out)
    say.result(f"observed {obs.count} entries of {obs.length} states (std {args.std:g}"
               f"{', operator ' + obs.operator if obs.operator else ''}) -> {plan.out}")


def cmd_train(args, plan, say):
    from sda_gui.core.diffusion.training import TrainConfig, train_model

    system = plan.system
    data = plan.data
    if data is None:
        progress = say.progress("simulate training data", "states incl. burn-in")
        say.info(f"simulating {args.trajectories} x {args.length} {system.title} states (seed {args.data_seed})")
        data = system.simulate(args.trajectories, args.length, seed=args.data_seed, device=plan.device,
                               progress=lambda done, total: progress(done, total)).cpu()
    config = TrainConfig(k=args.k, arch=dict(plan.arch), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, val_fraction=args.val_fraction, val_every=args.val_every,
                         device=str(plan.device), seed=args.seed, data_seed=plan.data_seed, amp=args.amp,
                         compile=args.compile, save_every=args.save_every, ema=args.ema)
    say.detail(f"{system!r}: data {tuple(data.shape)}, k={config.k}, network {plan.arch}, device {plan.device}")
    from sda_gui.core import distributed

    dist = distributed.current()
    if dist.enabled:
        say.info(f"train: data-parallel over {dist.world_size} processes: batch {config.batch_size} per process, "
                 f"effective batch {config.batch_size * dist.world_size}, learning rate {config.lr:g}")
    progress = say.progress("train", "steps", args.steps)

    def report(step, total, loss, val):
        progress(step, total, f"loss {loss:.4f}" + (f" val {val:.4f}" if val is not None else ""))

    deadline = time.perf_counter() + args.time_limit if args.time_limit else None
    model, history = train_model(system, data, config, progress=report, checkpoint_path=plan.out,
                                 resume_from=args.resume, init_from=args.init,
                                 should_stop=(lambda: time.perf_counter() > deadline) if deadline else None)
    done = model.training_info["steps_done"]
    if not dist.is_main:
        return 0  # rank 0 saved the model; the others only trained
    if history["stopped"]:
        say.info(f"train: time limit reached after {done} steps; the model so far is saved")
    out = Path(plan.out)
    from sda_gui.core.provenance import add_to_checkpoint, file_record

    # the data the model saw: the file given, or the simulation's settings and seed
    origin = {"data": file_record(args.data)} if args.data else \
        {"data": {"simulated": True, "trajectories": args.trajectories, "length": args.length, "seed": args.data_seed}}
    add_to_checkpoint(plan.out, dict(origin, seeds={"seed": args.seed, "data_seed": plan.data_seed},
                                     settings=dict(vars(config))))
    if args.half:
        from sda_gui.core.diffusion.checkpoint import save_checkpoint

        if history["stopped"]:
            # keep the resumable fp32 file where --resume will look for it
            out = out.with_name(f"{out.stem}-half{out.suffix}")
        save_checkpoint(model, out, model.training_info, half=True)
    size = out.stat().st_size / 2 ** 20
    params = sum(p.numel() for p in model.net.parameters())
    val = next((v for v in reversed(history["val"]) if v is not None), None)
    say.result(f"trained {params / 1e6:.2f} M parameters for {done} steps in {history['seconds']:.1f} s; "
               f"last val loss {'none' if val is None else f'{val:.4f}'}; saved {out} ({size:.1f} MiB)")
