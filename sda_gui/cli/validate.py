"""Every argument and input file of every subcommand, checked before any work: the one place.

``validate(args)`` returns a ``Plan`` — the system, device, loaded inputs and
resolved settings the command will use — or raises ``CliError`` (one line). It
reads the inputs (observations, data, models, truth) because their contents are
part of what is checked (an empty data file, a checkpoint whose scale is zero, a
window shorter than the model's), but it simulates, trains, samples and writes
nothing, so a refused run leaves no file behind. The tables below state each
subcommand's numeric ranges.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import SimpleNamespace
from typing import Optional

from .checks import (SEED_LIMIT, CliError, above, at_least, check_input, check_out_dir, check_output, check_params,
                     check_ranges, check_system, from_below, inside, int_list, load_plugins, name_list,
                     odd_at_least, parse_params)
from .parser import FOLDS, GUIDANCES
from .validate_inputs import data_system as _data_system
from .validate_inputs import ensure_source as _ensure_source
from .validate_inputs import observe as _observe
from .resources import check_fits, method_bytes, oom_hint, simulation_bytes

__all__ = ["validate", "Plan", "SDA_OPTIONS", "METHOD_OPTIONS"]

Plan = SimpleNamespace

SDA_OPTIONS = ("steps", "corrections", "final_corrections", "guidance", "tau", "gamma", "dynamics_std",
               "dynamics_gamma", "fold", "refine_iterations", "refine_model_error", "refine_stages")
METHOD_OPTIONS = ("inflation", "localization", "iterations", "particles", "model_error")
METHOD_RANGES = {"samples": at_least(1), "steps": at_least(1), "corrections": at_least(0),
                 "final_corrections": at_least(0), "tau": above(0),
                 "gamma": at_least(0, integer=False), "dynamics_std": at_least(0, integer=False),
                 "dynamics_gamma": at_least(0, integer=False), "inflation": above(0),
                 "localization": at_least(float("-inf"), integer=False), "iterations": at_least(1),
                 "particles": at_least(1), "refine_iterations": at_least(0), "refine_stages": at_least(1),
                 "refine_model_error": at_least(0, integer=False), "model_error": at_least(0, integer=False)}
RANGES = {
    "simulate": {"trajectories": at_least(1), "length": at_least(1)},
    "train": {"steps": at_least(1), "batch_size": at_least(1), "k": at_least(1), "trajectories": at_least(1),
              "length": at_least(1), "val_every": at_least(1), "width": at_least(1), "depth": at_least(1),
              "kernel": odd_at_least(1), "blocks": at_least(1), "emb": at_least(2), "lr": above(0),
              "weight_decay": at_least(0, integer=False), "val_fraction": inside(0, 1), "time_limit": above(0),
              "save_every": at_least(0), "data_seed": at_least(0), "ema": from_below(0, 1)},
    "observe": {"trajectory": at_least(0), "every_states": at_least(1), "every_variables": at_least(1),
                "std": above(0)},
    "assimilate": METHOD_RANGES,
    "compare": METHOD_RANGES,
    "evaluate": {"cases": at_least(1), "samples": at_least(1), "particles": at_least(1), "steps": at_least(1),
                 "tau": above(0), "gamma": at_least(0, integer=False)},
    "bench": {"samples": at_least(1), "members": at_least(1), "length": at_least(1), "steps": at_least(1),
              "repeats": at_least(1), "resolution": at_least(1), "batch": at_least(1), "frames": at_least(1),
              "max_threads": at_least(1)},
}
ARRAY_SUFFIXES = (".npz", ".h5", ".hdf5", ".nc")


def _device(args):
    from sda_gui.core.assimilation import DeviceError, resolve_device

    try:
        return resolve_device(getattr(args, "device", "cpu"))
    except DeviceError as exc:
        raise CliError(str(exc)) from None


def _guidance(value, option="--guidance"):
    if value is not None and value not in GUIDANCES:
        raise CliError(f"{option} must be one of {', '.join(GUIDANCES)}, got '{value}'")


def _fold(value):
    if value is not None and value not in FOLDS:
        raise CliError(f"--fold must be one of {', '.join(FOLDS)}, got '{value}'")


def validate(args) -> Plan:
    check_ranges(args, RANGES.get(args.command, {}))
    for dest in ("seed", "data_seed"):
        value = getattr(args, dest, None)
        if value is not None and not 0 <= value < SEED_LIMIT:
            raise CliError(f"--{dest.replace('_', '-')} must satisfy 0 ≤ seed < 2^63, got {value}")
    plan = Plan(device=_device(args))
    plan.plugins = load_plugins(args)
    return {"simulate": _simulate, "observe": _observe, "train": _train, "assimilate": _assimilate, "compare": _compare,
            "evaluate": _evaluate, "bench": _bench, "lessons": _lessons}[args.command](args, plan)


# simulate, train -----------------------------------------------------------------------------
def _simulate(args, plan):
    plan.system = check_system(args.system, parse_params(args.param))
    plan.out = check_output(args.out, (".h5", ".hdf5", ".nc"), {})
    need = simulation_bytes(plan.system, args.trajectories, args.length)
    check_fits(need, "cpu", f"simulating {args.trajectories} x {args.length} states",
               oom_hint("simulate", plan.device))
    return plan


def _arch(args, system) -> dict:
    from sda_gui.core.diffusion.networks import NETWORKS
    from sda_gui.core.diffusion.training import default_arch

    arch = default_arch(system)
    if args.arch and args.arch != arch["name"]:
        arch = {"name": args.arch}
    if args.precondition is not None:
        arch["precondition"] = args.precondition
    accepted = inspect.signature(NETWORKS[arch["name"]].__init__).parameters
    for key in ("width", "depth", "kernel", "blocks", "emb", "channels"):
        value = getattr(args, key)
        if value is None:
            continue
        if key not in accepted:
            raise CliError(f"--{key} does not apply to the {arch['name']} network")
        if key == "emb" and value % 2:
            raise CliError(f"--emb must be even, got {value}")
        arch[key] = int_list(value, "--channels", low=1) if key == "channels" else value
    return arch


def _check_network(arch: dict, k: int, system) -> None:
    from sda_gui.core.diffusion.networks import build_network

    try:
        build_network(arch, 2 * k + 1, system.state_shape)
    except (TypeError, ValueError) as exc:
        raise CliError(f"the {arch.get('name')} network does not fit {system.name} states "
                       f"{tuple(system.state_shape)}: {str(exc).splitlines()[0]}") from None


def _train(args, plan):
    from sda_gui.core.datasets import load_trajectories, read_metadata
    from sda_gui.core.diffusion.checkpoint import load_checkpoint, read_checkpoint

    if args.resume and args.init:
        raise CliError("pass either --resume (continue a run) or --init (start from a model's weights), not both")
    data_path, resume, init = (check_input(p, o) for p, o in ((args.data, "--data"), (args.resume, "--resume"),
                                                             (args.init, "--init")))
    start = None
    if resume or init:
        load_checkpoint(resume or init)          # every entry checked: one CheckpointError line if damaged
        start = read_checkpoint(resume or init)
    k = int(start["k"]) if init else args.k
    if init and any(getattr(args, key) is not None for key in ("arch", "width", "depth", "kernel", "blocks", "emb",
                                                                 "channels", "precondition")):
        raise CliError("--init trains the model's own architecture; drop the network options")
    params = parse_params(args.param)
    if data_path:
        # the data's own metadata names its system; a bare array takes --system and --param, and
        # without --system becomes a data system (its own name, variables, Δt and normalisation)
        meta = read_metadata(data_path)
        name = meta.get("system") or args.system
        if meta.get("system") and args.system and args.system != meta["system"]:
            raise CliError(f"--system {args.system} differs from the data's system {meta['system']}")
        if meta.get("system") and params:
            raise CliError("the data file fixes the system's parameters; drop --param")
        if name and args.dt is not None:
            raise CliError(f"--dt is for data that names no system; {name}'s time step is a parameter (--param dt=…)")
        if meta.get("system"):
            _ensure_source(meta)
        if name:
            plan.system = check_system(name, meta.get("params", params), where="the data's parameters"
                                       if meta.get("system") else "--param")
            plan.data, _ = load_trajectories(data_path, tuple(plan.system.state_shape), min_length=2 * k + 1,
                                             variable=args.variable)
        else:
            plan.system, plan.data = _data_system(args, data_path, params, k)
        plan.data_seed = meta.get("seed")
        count = plan.data.shape[0]
    else:
        plan.system = check_system(args.system, params)
        plan.data, plan.data_seed, count = None, args.data_seed, args.trajectories
        if args.length < 2 * k + 1:
            raise CliError(f"--length {args.length} is shorter than a window of 2k+1 = {2 * k + 1} states")
    if count > 1 and count - round(args.val_fraction * count) < 1:
        raise CliError(f"--val-fraction {args.val_fraction} leaves no trajectory of {count} to train on")
    system = plan.system
    if start is not None:
        kind = "--resume" if resume else "--init"
        if start["system"]["name"] != system.name:
            raise CliError(f"{kind}: the model is not a {system.name} model")
        if tuple(start["state_shape"]) != tuple(system.state_shape):
            raise CliError(f"{kind}: the model's states {tuple(start['state_shape'])} are not "
                           f"{tuple(system.state_shape)}")
    plan.arch = dict(start["arch"]) if init else _arch(args, system)
    _check_network(plan.arch, k, system)
    if resume:
        state = start.get("train_state")
        if not isinstance(state, dict) or not all(key in state for key in ("optimizer", "scheduler", "step")):
            raise CliError("--resume: this checkpoint cannot resume training (no optimiser state)")
        if int(start["k"]) != args.k or start["arch"]["name"] != plan.arch["name"]:
            raise CliError(f"--resume: the run used k={start['k']} and {start['arch']['name']}; "
                           f"pass the same --k and network options")
        if not 0 <= int(state["step"]) <= args.steps:
            raise CliError(f"--resume: the run is at step {state['step']}, beyond --steps {args.steps}")
    plan.out = check_output(args.out, (".pt", ".pth"), {"--data": data_path, "--init": init})
    if plan.data is None:
        need = 3 * simulation_bytes(system, args.trajectories, args.length)
        check_fits(need, "cpu", f"the training set of {args.trajectories} x {args.length} states",
                   oom_hint("train", plan.device))
    return plan


# assimilate, compare -------------------------------------------------------------------------
def _overrides(args, names) -> dict:
    return {key: getattr(args, key) for key in names if getattr(args, key, None) is not None}


def _problem(args, plan, needs_model: bool):
    """The system (from the model for sda), the model and the observation, each checked."""
    from sda_gui.core.diffusion.checkpoint import check_model_for_system, load_model_for, model_system
    from sda_gui.core.observation import Observation

    obs_path = check_input(args.observations, "--observations")
    model_path = check_input(args.model, "--model")
    params = parse_params(args.param)
    if needs_model:
        # the model first: it names where its system came from (a plugin file is loaded from there)
        model = load_model_for(args.system, model_path, plan.device)
        if model_system(model).has_dynamics:
            params = check_params(args.system, params)
            check_params(args.system, model.system.get("params", {}), where="the model's system parameters")
        elif params:
            raise CliError(f"--param: {args.system} is a data system (built from trajectories); it has no "
                           f"parameters to set")
        plan.system, plan.model = model_system(model, params), model
        check_model_for_system(model, plan.system)
    else:
        if model_path is not None:
            raise CliError("--model is used by sda only")
        plan.system, plan.model = check_system(args.system, params), None
    plan.observation = Observation.load(obs_path).validate(tuple(plan.system.state_shape))
    if needs_model and plan.observation.length < plan.model.window:
        raise CliError(f"the observation covers {plan.observation.length} states; this model needs at least "
                       f"2k+1 = {plan.model.window}")
    plan.inputs = {"--observations": obs_path, "--model": model_path or None}
    return plan


def _method_settings(cls, system, overrides: dict) -> dict:
    from sda_gui.core.methods import MethodError, settings_from

    fields = [f.name for f in dataclasses.fields(cls.default_settings(system))]
    for key in overrides:
        if key not in fields:
            raise CliError(f"--{key.replace('_', '-')} is not an option of {cls.name} "
                           f"(its settings: {', '.join(fields) or 'none'})")
    try:
        return dataclasses.asdict(settings_from(cls, system, overrides))
    except MethodError as exc:
        raise CliError(str(exc)) from None


def _run_bytes(cls, settings: dict, n: int, observation, system) -> float:
    import math

    size = math.prod(system.state_shape)
    particles = settings.get("particles") or max(1024, 16 * n)
    return method_bytes(cls.family, n, observation.length, size, particles)


def _assimilate(args, plan):
    from sda_gui.core.methods import MethodError, get_method

    _guidance(args.guidance)
    _fold(args.fold)
    try:
        cls = get_method(args.method)
    except MethodError as exc:
        raise CliError(str(exc)) from None
    _problem(args, plan, cls.needs_model)
    plan.method = cls.name
    plan.overrides = _overrides(args, SDA_OPTIONS + METHOD_OPTIONS)
    plan.settings = _method_settings(cls, plan.system, plan.overrides)
    plan.out = check_output(args.out, ARRAY_SUFFIXES, plan.inputs)
    check_fits(_run_bytes(cls, plan.settings, args.samples, plan.observation, plan.system), plan.device,
               f"{cls.name} with {args.samples} members of {plan.observation.length} states",
               oom_hint("assimilate", plan.device))
    return plan


def _read_truth(path, system, length):
    import numpy as np

    from sda_gui.core.datasets import DatasetError, check_trajectories, load_trajectories

    p = check_input(path, "--truth")
    try:
        arr = None
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                if "truth" in f.files:
                    arr = check_trajectories(np.asarray(f["truth"]), tuple(system.state_shape), p.name)
        if arr is None:
            arr, _ = load_trajectories(p, tuple(system.state_shape))
    except DatasetError as exc:
        raise CliError(f"--truth: {exc}") from None
    except Exception as exc:  # a broken zip or HDF5 file
        raise CliError(f"--truth: cannot read {p.name}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    if arr.shape[0] != 1 or arr.shape[1] != length:
        raise CliError(f"--truth holds trajectories of shape {arr.shape}; expected one of {length} states "
                       f"(the observation's length)")
    return arr[0]


def _compare(args, plan):
    import importlib

    from sda_gui.core.methods import get_method, method_names

    try:
        importlib.import_module("sda_gui.core.compare")
    except ModuleNotFoundError as exc:
        if exc.name != "sda_gui.core.compare":
            raise
        raise CliError("compare is not available in this version (sda_gui.core.compare is missing)") from None
    _guidance(args.guidance)
    _fold(args.fold)
    plan.methods = name_list(args.methods, "--methods", method_names())
    classes = {name: get_method(name) for name in plan.methods}
    _problem(args, plan, any(cls.needs_model for cls in classes.values()))
    plan.truth = _read_truth(args.truth, plan.system, plan.observation.length)
    given = _overrides(args, SDA_OPTIONS + METHOD_OPTIONS)
    plan.settings, used = {}, set()
    for name, cls in classes.items():
        fields = {f.name for f in dataclasses.fields(cls.default_settings(plan.system))}
        mine = {key: value for key, value in given.items() if key in fields}
        used |= set(mine)
        plan.settings[name] = _method_settings(cls, plan.system, mine)
    unused = sorted(set(given) - used)
    if unused:
        raise CliError(f"--{unused[0]} is an option of none of the methods {', '.join(plan.methods)}")
    plan.overrides = {name: _overrides(SimpleNamespace(**given), plan.settings[name]) for name in plan.methods}
    plan.out_dir = check_out_dir(args.out_dir)
    need = max(_run_bytes(cls, plan.settings[name], args.samples, plan.observation, plan.system)
               for name, cls in classes.items())
    check_fits(need, plan.device, f"comparing {len(classes)} methods with {args.samples} members",
               oom_hint("compare", plan.device))
    return plan


# evaluate, bench -----------------------------------------------------------------------------
def _evaluate(args, plan):
    from pathlib import Path

    from sda_gui.core.diffusion.checkpoint import load_model_for

    if args.system != "lorenz63":
        raise CliError("evaluate reproduces the paper's Lorenz-63 protocol; use --system lorenz63")
    _guidance(args.guidance)
    plan.corrections = int_list(args.corrections, "--corrections", low=0)
    plan.protocols = name_list(args.protocols, "--protocols", ("sparse", "dense"))
    plan.out_dir = check_out_dir(args.out_dir)
    plan.models = {}
    for path in args.models or [None]:
        name = Path(path).stem if path else "shipped"
        while name in plan.models:
            name += "'"
        plan.models[name] = load_model_for("lorenz63", check_input(path, "--models"), plan.device)
    need = max(method_bytes("particle", 0, 65, 3, args.particles), method_bytes("diffusion", args.samples, 65, 3))
    check_fits(need, plan.device, f"{args.particles} particles and {args.samples} samples",
               oom_hint("evaluate", plan.device))
    return plan


BENCH_DEFAULTS = {"samples": {"case": 1, "threads": 64, None: 1024}, "length": {"classical": 128, None: 65},
                  "steps": {"threads": 8, None: 256}, "repeats": {"classical": 3, None: 1},
                  "corrections": {"case": "1", "threads": "1", None: "0,1,2"}}


def _bench(args, plan):
    for key, table in BENCH_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, table.get(args.what, table[None]))
    plan.corrections = int_list(args.corrections, "--corrections", low=0)
    if args.what in ("case", "threads") and len(plan.corrections) != 1:
        raise CliError(f"bench {args.what} takes one value of --corrections, got '{args.corrections}'")
    _guidance(args.guidance)
    budget = getattr(args, "memory_budget", None)
    if budget is not None and not budget > 0:
        raise CliError(f"--memory-budget must be > 0 MiB, got {budget:g}")
    check_input(args.model, "--model")
    if args.what in ("assimilate", "train", "threads"):
        check_system(args.system)
    if args.what in ("case", "solver"):
        check_system("kolmogorov", {"resolution": args.resolution}, where="--resolution")
    if args.what == "classical":
        import importlib

        try:
            importlib.import_module("sda_gui.bench_classical")
        except ModuleNotFoundError as exc:
            if exc.name != "sda_gui.bench_classical":
                raise
            raise CliError("bench classical is not available in this version (sda_gui.bench_classical is missing)") \
                from None
    return plan


def _lessons(args, plan):
    if args.check is not None:
        check_input(args.check, "--check")
    return plan
