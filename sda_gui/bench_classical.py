"""Classical data assimilation against DAPPER: the same problems, timings and accuracy tables.

DAPPER (``pip install dapper``) is the field's benchmarking package; it is only
needed here and in the tests, never by the app. ``dapper_assimilate`` runs one of
its methods on *our* problem: the same truth, the same noisy observations, the
same initial ensemble (our cold start: ``ctx.generator`` seeded with ``seed``,
``system.initial_states``), and its own model (``dapper.mods.Lorenz96/63``, one RK4
step per state, as ours). DAPPER never observes its initial time ``k = 0`` and
steps from ``k = 0`` to ``k = 1``; here that first step is the identity, so DAPPER's
``k`` is our state ``k − 1`` and its observation times ``dko, 2 dko, …`` are our
states ``dko − 1, 2 dko − 1, …`` (the problems below observe exactly those).

Scores follow DAPPER's convention: per state the RMSE of the ensemble mean
``√(mean_j (x̄_j − x_j)²)`` and the spread ``√(mean_j var_j)``, then averaged over
the window's states.

- ``bench_classical(members, length, repeats)``: wall time of our EnKF and LETKF on
  Lorenz-96 (all variables every state, σ = 1) against DAPPER's, and the ratio, with
  and without our cold start (DAPPER is handed the initial ensemble).
- ``accuracy_table(windows, …)``: RMSE and spread of our methods (and DAPPER's) on
  the benchmark problems of ``PROBLEMS``, cold start, several windows, with the
  calibration scores of ``core.calibration`` (spread/RMSE and the rank-histogram
  ``χ²/dof``, each the mean over the windows) and the members' one-step residual
  against the true transition (the model error they carry); printed as a Markdown table by
  ``python -m sda_gui.bench_classical --table --windows 4``. SDA is a method like the
  others (``--methods sda``, see ``sda_gui.bench_sda``): the same truths, observations
  and seeds, its score model per system (the shipped one unless ``--model`` names one).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from sda_gui.core import calibration
from sda_gui.core.metrics import physical_residual
from sda_gui.core.methods import get_method, run_method, settings_from
from sda_gui.core.observation import Observation, synthesize
from sda_gui.core.systems import make_system

__all__ = ["PROBLEMS", "Problem", "make_problem", "initial_ensemble", "dapper_available", "dapper_assimilate",
           "window_scores", "member_scores", "our_settings", "accuracy_table", "bench_classical", "run"]

CLASSICAL = ("enkf", "letkf", "enks", "ienks")
#: the methods DAPPER has a counterpart of (``_dapper_method``); the others get no DAPPER column
DAPPER_COUNTERPARTS = CLASSICAL


@dataclass(frozen=True)
class Problem:
    """Observe every ``var_every``-th variable at states ``every − 1, 2·every − 1, …`` with std ``std``."""

    system: str
    length: int
    every: int
    var_every: int
    std: float
    params: tuple = ()

    def make_system(self):
        return make_system(self.system, **dict(self.params))


PROBLEMS = {
    "l96-dense-32": Problem("lorenz96", 32, 1, 1, 1.0),
    "l96-dense-128": Problem("lorenz96", 128, 1, 1, 1.0),
    "l96-half-32": Problem("lorenz96", 32, 2, 2, 1.0),
    "l96-quarter-32": Problem("lorenz96", 32, 4, 4, 1.0),
    "l63-x8-64": Problem("lorenz63", 64, 8, 3, 0.4),
    "l63-all25-100": Problem("lorenz63", 100, 25, 1, math.sqrt(2.0)),
}


def make_problem(problem: Problem, seed: int):
    """``(system, truth (L, d) float64, observation)`` for one window drawn with ``seed``."""
    system = problem.make_system()
    truth = system.simulate(1, problem.length, seed=10_000 + seed)[0].double().numpy()
    mask = np.zeros(truth.shape, dtype=bool)
    mask[problem.every - 1::problem.every, ::problem.var_every] = True
    return system, truth, synthesize(truth, mask, problem.std, seed=20_000 + seed)


def initial_ensemble(system, n: int, seed: int, device="cpu") -> np.ndarray:
    """The cold start our methods draw first from ``ctx.generator`` (``common.climatology``)."""
    gen = torch.Generator(device=device).manual_seed(int(seed))
    return system.initial_states(n, gen, device).to(torch.float64).cpu().numpy()


def window_scores(members_mean: np.ndarray, spread: np.ndarray, truth: np.ndarray) -> dict:
    """DAPPER's RMSE and spread: per state over the variables, then averaged over states."""
    rmse = np.sqrt(np.mean((members_mean - truth) ** 2, axis=-1))
    return {"rmse": float(rmse.mean()), "spread": float(np.mean(spread))}


def member_scores(members, truth, system=None) -> dict:
    """DAPPER's RMSE and spread of ``members`` ``(N, L, d)``, with spread/RMSE and the rank ``χ²/dof``.

    With ``system`` also ``step_residual``: the members' RMS one-step error ``x_{i+1} − f(x_i)``
    against the system's own transition (``metrics.physical_residual``), the model error a method's
    members carry; the truth scores the transition-noise std (0 on the deterministic Lorenz-96).
    """
    m = np.asarray(members, dtype=np.float64)
    out = window_scores(m.mean(0), np.sqrt(m.var(0, ddof=1).mean(-1)), truth)
    out["spread_skill"] = calibration.spread_skill(m, truth)
    out["rank_flatness"] = calibration.rank_flatness(calibration.rank_histogram(m, truth))
    out["rank_p"], out["rank_reference"] = calibration.rank_exchangeability(m, truth)
    if system is not None:
        out["step_residual"] = physical_residual(m, system)
    return out


# ----------------------------------------------------------------------------------------------- DAPPER


def dapper_available() -> bool:
    try:
        import dapper  # noqa: F401
    except ImportError:
        return False
    return True


def _dapper_step(system):
    """DAPPER's own model step for our system, with the identity as its first step (``t = 0``)."""
    if system.name == "lorenz96":
        import dapper.mods.Lorenz96 as model

        model.Force = system.forcing  # read by its dxdt at call time
        base = model.step
    elif system.name == "lorenz63":
        import dapper.mods.Lorenz63 as model

        if (system.sigma, system.rho, system.beta) != (model.sig, model.rho, model.beta):
            raise ValueError("DAPPER's Lorenz-63 has σ=10, ρ=28, β=8/3 only")
        base = model.step
    else:
        raise ValueError(f"no DAPPER model for system '{system.name}'")

    def step(x, t, dt):
        return np.array(x, copy=True) if t < 0.5 * dt else base(x, t, dt)

    return step


def _dapper_hmm(system, observation: Observation, initial: np.ndarray):
    import dapper.mods as modelling
    from dapper.tools.localization import nd_Id_localization, no_localization

    if observation.operator:
        raise ValueError("DAPPER comparisons use direct observations (no operator)")
    mask = observation.mask
    length, d = mask.shape
    observed = observation.observed_states()
    every = int(observed[0]) + 1
    if not (np.array_equal(observed, np.arange(every - 1, length, every)) and length % every == 0):
        raise ValueError("DAPPER comparisons observe states every−1, 2·every−1, … of a window divisible by every")
    jj = np.flatnonzero(mask[observed[0]])
    if not all(np.array_equal(np.flatnonzero(mask[i]), jj) for i in observed):
        raise ValueError("DAPPER comparisons observe the same variables at every observed state")
    std = np.asarray(observation.std)
    if std.ndim:
        raise ValueError("DAPPER comparisons use a scalar observation std")
    tseq = modelling.Chronology(dt=system.dt, dko=every, K=length, BurnIn=0)
    noise = getattr(system, "noise", 0.0)
    dyn = {"M": d, "model": _dapper_step(system),
           "noise": modelling.GaussRV(C=noise ** 2, M=d) if noise > 0 else 0}
    obs = modelling.partial_Id_Obs(d, jj)
    obs["noise"] = float(std) ** 2
    obs["localizer"] = (nd_Id_localization((d,), (1,), jj, periodic=True) if d > 4 else no_localization(d, len(jj)))
    x0 = modelling.RV(M=d, func=lambda n: np.array(initial[:n], copy=True))
    hmm = modelling.HiddenMarkovModel(dyn, obs, tseq, x0)
    yy = np.stack([observation.values[i][jj] for i in observed])
    return hmm, yy, len(observed)


def _dapper_method(name: str, settings: dict, n: int, n_obs: int, system):
    import dapper.da_methods as da

    infl = float(settings.get("inflation", 1.0))
    if name == "enkf":
        return da.EnKF("PertObs" if settings.get("variant") == "perturbed" else "Sqrt", N=n, infl=infl)
    if name == "enks":
        upd = "PertObs" if settings.get("variant") == "perturbed" else "Sqrt"
        return da.EnKS(upd, N=n, Lag=n_obs + 1, infl=infl)
    if name == "letkf":
        c = float(settings.get("localization", 0.0))
        local = 0 < c < math.inf and system.state_shape[0] > 4
        # DAPPER's Gaspari–Cohn half-width is 1.82 × loc_rad
        return da.LETKF(N=n, infl=infl, loc_rad=c / 1.82 if local else np.inf)
    if name == "ienks":
        lag = int(settings.get("lag", 0))
        return da.iEnKS("Sqrt", N=n, Lag=lag if 0 < lag <= n_obs else n_obs + 1, nIter=int(settings.get("iterations", 4)),
                        wtol=float(settings.get("tolerance", 0.0)), infl=infl)
    raise ValueError(f"no DAPPER counterpart for method '{name}'")


def dapper_assimilate(name: str, system, truth: np.ndarray, observation: Observation, initial: np.ndarray,
                      settings: dict, seed: int = 1, lean: bool = False):
    """DAPPER's method ``name`` on our problem: ``(mean (L, d), spread (L,), seconds)``.

    ``settings`` are ours (``inflation``, ``variant``, ``localization``,
    ``iterations``, ``tolerance``); ``initial`` the ``(N, d)`` starting ensemble.
    ``lean`` keeps DAPPER's statistics to the error only (for timing).
    """
    import dapper.tools.progressbar as progressbar
    from dapper.dpr_config import rc
    from dapper.tools.seeding import set_seed

    progressbar.disable_progbar = True
    progressbar.disable_user_interaction = True
    hmm, yy, n_obs = _dapper_hmm(system, observation, initial)
    xp = _dapper_method(name, settings, len(initial), n_obs, system)
    xx = np.concatenate([truth[:1], truth]).astype(np.float64)
    set_seed(int(seed) + 1)
    old = rc.comps["error_only"]
    rc.comps["error_only"] = bool(lean)
    try:
        t0 = time.perf_counter()
        xp.assimilate(hmm, xx, yy, store_u=True)
        seconds = time.perf_counter() - t0
    finally:
        rc.comps["error_only"] = old
    mean = np.asarray(xp.stats.mu.u)[1:]
    spread = np.sqrt(np.mean(np.asarray(xp.stats.spread.u)[1:] ** 2, axis=-1)) if not lean else np.full(len(mean), np.nan)
    return mean, spread, seconds


# ----------------------------------------------------------------------------------------------- tables


def our_settings(name: str, system, overrides: Optional[dict] = None) -> dict:
    import dataclasses

    return dataclasses.asdict(settings_from(get_method(name), system, overrides))


def accuracy_table(problems=None, windows: int = 4, members: int = 40, methods=CLASSICAL, dapper: bool = True,
                   overrides: Optional[dict] = None, device="cpu", echo=print, samples: int = 256,
                   models: Optional[dict] = None) -> list[dict]:
    """Mean scores over ``windows`` windows for each problem and method (ours, and DAPPER's).

    A method that needs a score model (SDA) draws ``samples`` members with
    ``models[system name]`` (a ``LocalScoreModel`` or a checkpoint path; the shipped
    model by default) and has no DAPPER column; the others run ``members`` members.
    """
    from sda_gui.bench_sda import model_for

    classical = any(n in DAPPER_COUNTERPARTS for n in methods)
    use_dapper = dapper and classical and dapper_available()
    if dapper and classical and not use_dapper:
        echo("DAPPER is not installed (pip install dapper==1.7.1): its columns are skipped")
    models = dict(models or {})
    rows = []
    for key in problems or PROBLEMS:
        problem = PROBLEMS[key]
        for name in methods:
            needs_model = get_method(name).needs_model
            acc = {"ours": [], "dapper": [], "seconds": []}
            settings, model, n = None, None, samples if needs_model else members
            for w in range(windows):
                system, truth, obs = make_problem(problem, w)
                settings = our_settings(name, system, (overrides or {}).get(name))
                if needs_model:
                    model = models[system.name] = model_for(system.name, models.get(system.name))
                result = run_method(name, system, obs, n, settings, model=model, device=device, seed=w)
                acc["ours"].append(member_scores(result.members.numpy(), truth, system))
                acc["seconds"].append(result.diagnostics["seconds"])
                # DAPPER's iEnKS refuses model noise (its Q > 0 is "not yet supported")
                if (use_dapper and name in DAPPER_COUNTERPARTS
                        and not (name == "ienks" and getattr(system, "noise", 0.0) > 0)):
                    mean, spread, _ = dapper_assimilate(name, system, truth, obs, initial_ensemble(system, members, w),
                                                        settings, seed=w)
                    acc["dapper"].append(window_scores(mean, spread, truth))
            row = {"problem": key, "method": name, "settings": settings, "members": n,
                   "seconds": float(np.mean(acc["seconds"])),
                   "rmse_windows": [s["rmse"] for s in acc["ours"]]}
            for score in ("rmse", "spread", "spread_skill", "rank_flatness", "rank_reference", "step_residual"):
                row[score] = float(np.mean([s[score] for s in acc["ours"]]))
            row["rank_p_windows"] = [s["rank_p"] for s in acc["ours"]]
            row["rank_p"] = calibration.combine_p_values(row["rank_p_windows"])
            if model is not None:
                row["model"] = Path(getattr(model, "source_path", "")).name
            if acc["dapper"]:
                row["dapper_rmse"] = float(np.mean([s["rmse"] for s in acc["dapper"]]))
                row["dapper_spread"] = float(np.mean([s["spread"] for s in acc["dapper"]]))
            rows.append(row)
            echo(_format_row(row))
    return rows


TABLE_HEADER = ("| problem | method | RMSE | spread | spread/RMSE | rank χ²/dof (members') | rank p "
                "| step residual | DAPPER RMSE | DAPPER spread | s/window |\n" + "|---" * 11 + "|")


def _format_row(row: dict) -> str:
    text = (f"| {row['problem']:<15} | {row['method']:<6} | {row['rmse']:.3f} | {row['spread']:.3f} |"
            f" {row['spread_skill']:.2f} | {row['rank_flatness']:.1f} ({row['rank_reference']:.1f}) |"
            f" {row['rank_p']:.2f} | {row['step_residual']:.3f} |")
    if "dapper_rmse" in row:
        text += f" {row['dapper_rmse']:.3f} | {row['dapper_spread']:.3f} |"
    else:
        text += " – | – |"
    return text + f" {row['seconds']:.2f} |"


# ----------------------------------------------------------------------------------------------- timing


def bench_classical(members: int = 40, length: int = 128, repeats: int = 3, device="cpu", echo=print) -> dict:
    """Seconds per window of our EnKF/LETKF and DAPPER's on Lorenz-96 (N = 40, all observed, σ = 1).

    Ours is timed through ``run_method`` including the cold start's climatology
    draw (``burn_in`` transitions), which is also reported alone; DAPPER is given
    the same initial ensemble and timed with its statistics reduced to the error.
    Best of ``repeats``.
    """
    problem = Problem("lorenz96", int(length), 1, 1, 1.0)
    system, truth, obs = make_problem(problem, 0)
    initial = initial_ensemble(system, members, 0)
    out = {"members": members, "length": length, "threads": torch.get_num_threads(), "device": str(device)}
    t0 = time.perf_counter()
    initial_ensemble(system, members, 0, device)
    out["climatology_s"] = time.perf_counter() - t0
    have_dapper = dapper_available()
    if not have_dapper:
        echo("DAPPER is not installed (pip install dapper==1.7.1): timing ours only")
    for name in ("enkf", "letkf"):
        settings = our_settings(name, system)
        run_method(name, system, obs, members, settings, device=device)  # warm-up
        ours = min(run_method(name, system, obs, members, settings, device=device, seed=r).diagnostics["seconds"]
                   for r in range(repeats))
        out[f"{name}_s"] = ours
        line = f"{name:6s} ours {ours * 1e3:8.1f} ms/window (cold start {out['climatology_s'] * 1e3:.1f} ms of it)"
        if have_dapper:
            theirs = min(dapper_assimilate(name, system, truth, obs, initial, settings, seed=r, lean=True)[2]
                         for r in range(repeats))
            out[f"{name}_dapper_s"] = theirs
            out[f"{name}_ratio"] = ours / theirs
            # DAPPER is handed its initial ensemble: compare the assimilation alone too
            out[f"{name}_ratio_without_cold_start"] = max(ours - out["climatology_s"], 0.0) / theirs
            line += (f"   DAPPER {theirs * 1e3:8.1f} ms   ours/DAPPER {ours / theirs:.2f}"
                     f" ({out[f'{name}_ratio_without_cold_start']:.2f} without the cold start)")
        echo(line)
    return out


def run(args=None) -> dict:
    """``python -m sda_gui.bench_classical``: the timing, then (with ``--table``) the accuracy table.

    ``--methods`` (e.g. ``sda`` or ``letkf,sda``) prints the table of those methods only,
    without the timing; the SDA options are those of ``sda_gui.bench_sda.add_options``.
    """
    import argparse

    from sda_gui.bench_sda import add_options, models_from, sda_overrides

    parser = argparse.ArgumentParser(prog="bench classical", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=40)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--table", action="store_true", help="also the accuracy table of every problem")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated methods of the table (default: {','.join(CLASSICAL)}); skips the timing")
    parser.add_argument("--problems", default=None, help=f"comma-separated among {', '.join(PROBLEMS)} (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                        help="a setting of one method, e.g. wc4dvar.model_error=0.05 (repeatable)")
    add_options(parser)
    opts = parser.parse_args(args)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    problems = opts.problems.split(",") if opts.problems else None
    unknown = [p for p in problems or () if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {', '.join(unknown)} (known: {', '.join(PROBLEMS)})")
    methods = tuple(m.strip().lower() for m in opts.methods.split(",")) if opts.methods else CLASSICAL
    overrides = {"sda": sda_overrides(opts)}
    for item in opts.set:
        key, sep, value = item.partition("=")
        method, dot, name = key.strip().lower().partition(".")
        if not (sep and dot and name):
            parser.error(f"--set wants METHOD.KEY=VALUE, got '{item}'")
        overrides.setdefault(method, {})[name] = value.strip()
    try:                                   # an unknown method or a bad SDA setting: one line, exit 2
        for name in methods:
            for key in problems or PROBLEMS:
                settings_from(get_method(name), PROBLEMS[key].make_system(), overrides.get(name))
    except ValueError as exc:              # MethodError
        parser.error(str(exc))
    try:
        models = models_from(opts.model)
    except (OSError, ValueError) as exc:   # CheckpointError is a ValueError
        parser.error(str(exc).splitlines()[0])
    out = {}
    if opts.methods is None:
        out = bench_classical(opts.members, opts.length, opts.repeats, opts.device)
    if opts.table or opts.methods is not None:
        print(TABLE_HEADER)
        out["table"] = accuracy_table(problems, windows=opts.windows, members=opts.members, methods=methods,
                                      overrides=overrides, device=opts.device,
                                      samples=opts.samples, models=models)
        for row in out["table"]:           # the means hide how much windows differ: print each
            print(f"{row['problem']} {row['method']} RMSE per window:",
                  " ".join(f"{r:.3f}" for r in row["rmse_windows"]),
                  "| rank p per window:", " ".join(f"{p:.2f}" for p in row["rank_p_windows"]))
    return out


if __name__ == "__main__":
    run()
