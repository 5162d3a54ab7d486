"""Validation of the inputs that are the user's own: data that names no system, plugin sources, ``observe``.

Part of ``cli.validate`` (the one place every argument is checked before any work):
``data_system`` makes a ``DataSystem`` from a trajectory file that names no system;
``ensure_source`` loads the plugin a data file's system came from; ``observe`` checks
the truth file, the pattern rule and the output of ``observe``.
"""

from __future__ import annotations

from .checks import CliError, check_input, check_output

__all__ = ["data_system", "ensure_source", "observe"]

#: what observe writes (the array files assimilate reads)
ARRAY_OUT = (".npz", ".h5", ".hdf5", ".nc")


def ensure_source(meta: dict) -> None:
    """A data file simulated from a plugin's system: that plugin, loaded from where the file says."""
    from sda_gui.core.systems.plugins import PluginError, ensure_system

    source = meta.get("system_source")
    try:
        ensure_system({"name": meta["system"], **({"source": source} if isinstance(source, dict) else {})})
    except PluginError as exc:
        raise CliError(f"--data: {exc}") from None


def data_system(args, data_path, params: dict, k: int):
    """The data system of a file that names no system, and its checked trajectories."""
    from sda_gui.core.datasets import load_trajectories
    from sda_gui.core.systems.data import DataSystem, data_system_name

    if params:
        raise CliError("--param: the data names no system, so there is none to set (a data system's time step: "
                       "--dt; or pass --system NAME to read the data as that system)")
    if args.dt is not None and not (args.dt > 0 and args.dt < float("inf")):
        raise CliError(f"--dt must be a finite number > 0, got {args.dt}")
    data, found = load_trajectories(data_path, None, min_length=2 * k + 1, variable=args.variable)
    dims = list(found.get("dims") or [])[1:]
    try:
        system = DataSystem.from_trajectories(
            data, data_system_name(found.get("name") or data_path.stem), found.get("variable_names"),
            args.dt or found.get("dt") or 1.0, units=found.get("units", ""),
            dims=dims if len(dims) == data.ndim - 2 else None,
            origin=DataSystem.origin_of(data_path, found.get("variable")), title=found.get("name", ""))
    except ValueError as exc:
        raise CliError(f"--data: {exc}") from None
    return system, data


def observe(args, plan):
    from sda_gui.core.datasets import load_trajectories, read_metadata
    from sda_gui.core.observation import parse_operator
    from sda_gui.core.systems import system_from_config
    from sda_gui.core.systems.plugins import PluginError

    if args.density is not None and not 0 < args.density <= 1:
        raise CliError(f"--density must lie in (0, 1], got {args.density}")
    truth_path = check_input(args.truth, "--truth")
    meta = read_metadata(truth_path)
    plan.system = None
    if meta.get("system"):
        try:
            source = meta.get("system_source")
            plan.system = system_from_config({"name": meta["system"], "params": meta.get("params", {}),
                                              **({"source": source} if isinstance(source, dict) else {})})
        except (PluginError, TypeError, ValueError) as exc:
            raise CliError(f"--truth: its system: {str(exc).splitlines()[0]}") from None
    shape = tuple(plan.system.state_shape) if plan.system is not None else None
    data, _ = load_trajectories(truth_path, shape, min_length=1, variable=args.variable)
    if args.trajectory >= data.shape[0]:
        raise CliError(f"--trajectory {args.trajectory}: the file holds {data.shape[0]} trajectories")
    plan.truth = data[args.trajectory]
    grid = parse_operator(args.operator).output_shape(tuple(plan.truth.shape[1:]))
    from sda_gui.api import observation_mask

    if not observation_mask((plan.truth.shape[0], *grid), args.every_states, args.every_variables, args.density,
                            args.seed).any():
        raise CliError("the pattern observes nothing; lower --every-states/--every-variables or raise --density")
    plan.out = check_output(args.out, ARRAY_OUT, {"--truth": truth_path})
    return plan
