"""``assimilate``, ``compare``, ``evaluate`` and ``bench``: the runs on observations, and the benchmarks.

``assimilate`` runs any registered method through ``core.methods.registry.run_method``
(only ``sda`` loads a model) and writes the same posterior file for every method.
``compare`` runs several methods on one problem through ``core.compare`` and
writes its report; ``evaluate`` runs the paper's Lorenz-63 protocol. Reports are
staged (``cli.files.staged_dir``), so a failed one changes no file.
"""

from __future__ import annotations

import time

__all__ = ["cmd_assimilate", "cmd_compare", "cmd_evaluate", "cmd_bench"]


def cmd_assimilate(args, plan, say):
    from sda_gui.core.methods import run_method

    from .files import write_posterior

    obs = plan.observation
    say.detail(f"{plan.method} on {plan.system!r}, {args.samples} members, {obs.length} states, device "
               f"{plan.device}, settings {plan.settings}")
    from sda_gui.core import distributed

    progress = say.progress(plan.method, "steps")
    t0 = time.perf_counter()
    dist = distributed.current()
    results = []

    def draw(n, seed):
        # under torchrun each rank draws its shard with its own seed; rank 0 gathers them in rank order
        results.append(run_method(plan.method, plan.system, obs, n, plan.overrides, model=plan.model,
                                  device=plan.device, seed=seed, progress=lambda done, total, _: progress(done, total)))
        return results[-1].members

    members = distributed.run_sharded(draw, args.samples, args.seed, dist)
    seconds = time.perf_counter() - t0
    if not dist.is_main:
        return 0
    result = results[-1]
    result.members = members
    from sda_gui.core.systems.plugins import source_of

    record = {"method": result.method, "system": plan.system.name, "params": plan.system.params,
              "system_source": source_of(plan.system),
              "samples": args.samples, "seed": args.seed, "device": str(plan.device), "seconds": seconds,
              "model": str(args.model or "default") if plan.model is not None else None, **result.settings,
              "method_settings": result.settings, "diagnostics": result.diagnostics,
              "processes": dist.world_size}
    if plan.model is not None:
        record["k"] = plan.model.k
    from sda_gui.core.provenance import provenance

    record["provenance"] = provenance(system=plan.system, model=plan.model, observation_path=args.observations,
                                      settings={"method": result.method, "samples": args.samples,
                                                **result.settings}, seeds={"seed": args.seed})
    write_posterior(plan.out, result.members, record, plan.system)
    say.result(f"{args.samples} {result.method} members of {obs.length} states in {seconds:.2f} s on "
               f"{plan.device} -> {plan.out}")


def cmd_compare(args, plan, say):
    from sda_gui.core.compare import compare, members_by_method, write_compare_report

    from .files import moved, staged_dir

    bars = {}

    def progress(method, done, total):
        if method not in bars:
            bars[method] = say.progress(f"compare {method}", "steps")
        bars[method](done, total)

    t0 = time.perf_counter()
    rows = compare(plan.system, plan.observation, plan.truth, plan.methods, args.samples, settings=plan.overrides,
                   model=plan.model, device=plan.device, seed=args.seed, progress=progress)
    for row in rows:
        if row.error:
            say.info(f"compare: {row.method} could not run: {row.error}")
        else:
            say.info(f"compare: {row.method}: RMSE {row.rmse:.3f}, spread {row.spread:.3f}, CRPS {row.crps:.3f}, "
                     f"{row.seconds:.1f} s")
    with staged_dir(plan.out_dir) as stage:
        written = write_compare_report(rows, members_by_method(rows), plan.truth, plan.observation, stage,
                                       variable_names=plan.system.variable_names)
        written["provenance"] = _write_provenance(stage / "provenance.json", args, plan)
        paths = moved(written, stage, plan.out_dir)
    say.result(f"compared {', '.join(plan.methods)} in {time.perf_counter() - t0:.1f} s -> "
               f"{', '.join(str(p) for p in paths.values())}")


def _write_provenance(path, args, plan):
    """The compare report's record: versions, system, model, observation and truth files, settings, seed."""
    import json

    from sda_gui.core.provenance import file_record, provenance

    from .files import json_safe

    record = provenance(system=plan.system, model=plan.model, observation_path=args.observations,
                        settings={"methods": plan.methods, "samples": args.samples, "settings": plan.settings},
                        seeds={"seed": args.seed}, truth=file_record(args.truth))
    from sda_gui.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_safe(record), indent=1), encoding="utf-8")
    return str(path)


def cmd_evaluate(args, plan, say):
    from sda_gui.core.evaluation import run_evaluation, write_report
    from sda_gui.core.systems import make_system

    from .files import moved, staged_dir

    t0 = time.perf_counter()
    rows = run_evaluation(make_system("lorenz63"), plan.models, plan.corrections, n_cases=args.cases,
                          samples=args.samples, particles=args.particles, steps=args.steps, tau=args.tau,
                          gamma=args.gamma, guidance=args.guidance, device=plan.device, seed=args.seed,
                          protocols=plan.protocols, log=lambda s: say.info(f"evaluate: {s}"))
    with staged_dir(plan.out_dir) as stage:
        paths = moved(write_report(rows, stage), stage, plan.out_dir)
    say.result(f"evaluation took {time.perf_counter() - t0:.0f} s -> {', '.join(str(p) for p in paths.values())}")


def cmd_bench(args, plan, say):
    from sda_gui import bench

    return bench.run(args, say)
