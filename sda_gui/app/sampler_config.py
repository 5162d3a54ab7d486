"""The sampler settings the app offers: names, types, ranges and per-system defaults.

One table (``FIELDS``) gives every setting of the *Assimilate* panel its type and the
range of its spin box; the panel builds its widgets from it, and a session file or the
saved preferences are checked against it before anything is applied, so a value that a
widget could not hold (a seed of 2³¹, a step count of ``"abc"``) is refused in one line
instead of overflowing a spin box half-way through opening a file.

Per-system defaults (``SYSTEM_DEFAULTS``) are what a new user gets when switching to a
system. They were chosen with the shipped models so that the default run fits the
observations (residual std of A(x) − y near σ_y) without blowing up. Residual std of 8
samples, τ = 0.5, truth seed 0, the shipped CPU models (``python -m sda_gui.app.sampler_config``
prints it):

=====================================  =========  =========  =========  =========
case (steps, C)                        (16, 0)    (32, 0)    (32, 1)    (64, 1)
=====================================  =========  =========  =========  =========
Lorenz-63, every 8th state, σ_y = 0.4  43.5       0.16       0.22       0.30
Lorenz-63, 20 % at random, σ_y = 1     0.76       0.76       0.92       1.00
Lorenz-96, 20 % at random, σ_y = 1     0.58       0.63       0.90       0.96
=====================================  =========  =========  =========  =========

Sixteen steps without corrections blow Lorenz-63 up (samples beyond ±100); without
corrections the mean hugs the observations (residual well below σ_y). Lorenz-96 at
(32, 1) takes 5 s on one CPU thread against 13 s at (64, 1) for nearly the same fit.
The Kolmogorov defaults (32 steps, C = 1, two samples) follow the CPU budget — about
40 s for two samples of 16 states, scaled from the 1.1 s per step of one 29-state
sample that ``docs/benchmarks.md`` reports for the shipped CPU model — rather than a
measured fit.
Both Lorenz systems also get τ = 1 (the method's own default for them, ``core.methods.sda``):
on the benchmark rows of ``bench_classical`` it lowers the posterior-mean RMSE by 6–21 %
against τ = 0.25 at 64 steps, C = 1, and calibrates the spread on dense observations
(``docs/benchmarks.md``). Lorenz-96 also starts with the dynamics term on (q = 0.05, the
method's own default there): 6–15 % lower RMSE on every Lorenz-96 row with either shipped
model; the panel greys it out, and leaves it out of the run, for DPS and MMPS.
Pure Python: no Qt, so the session reader can use it.
"""

from __future__ import annotations

import math
from typing import Optional

__all__ = ["FIELDS", "GUIDANCES", "DEVICES", "SYSTEM_DEFAULTS", "system_defaults", "check_settings", "check_seed",
           "SettingsError", "residual_table", "dynamics_apply", "refine_apply"]

GUIDANCES = {"sda": "SDA (Rozet & Louppe)", "dps": "DPS (baseline)", "mmps": "MMPS (Tweedie covariance)"}
DEVICES = ("auto", "cpu", "cuda")
SEED_MAX = 2**31 - 1

#: name → (type, low, high) of a number, or (str, choices) of a choice
FIELDS = {
    "guidance": (str, tuple(GUIDANCES)),
    "steps": (int, 1, 4096),
    "corrections": (int, 0, 16),
    # −1: the last steps get C corrections like the others (final corrections off)
    "final_corrections": (int, -1, 16),
    # model error per step of the dynamics term in physical units (0: off)
    "dynamics_std": (float, 0.0, 5.0),
    # outer L-BFGS iterations of the weak-constraint refinement of every sample (0: off)
    "refine_iterations": (int, 0, 1000),
    "tau": (float, 0.0, 5.0),
    "gamma": (float, 0.0, 10.0),
    "n_samples": (int, 1, 4096),
    "device": (str, DEVICES),
    "seed": (int, 0, SEED_MAX),
}

#: steps, corrections C, samples (and τ where it differs) a new user gets per system (None: any other system)
SYSTEM_DEFAULTS = {
    None: {"steps": 64, "corrections": 1, "n_samples": 8},
    # τ = 1 on both Lorenz systems and the dynamics term on Lorenz-96: the method's own
    # defaults (``core.methods.sda.SYSTEM_DEFAULTS``)
    "lorenz63": {"steps": 64, "corrections": 1, "n_samples": 8, "tau": 1.0},
    "lorenz96": {"steps": 32, "corrections": 1, "n_samples": 8, "tau": 1.0, "dynamics_std": 0.05},
    # a 64² field costs ~100× a ring per sample: two samples keep a CPU run near a minute
    "kolmogorov": {"steps": 32, "corrections": 1, "n_samples": 2},
}


class SettingsError(ValueError):
    """A setting of the wrong type or outside the range the panel offers; one line."""


#: τ and γ of a system that names none (the panel's first values)
STEP_DEFAULTS = {"tau": 0.5, "gamma": 1e-2, "final_corrections": -1, "dynamics_std": 0.0, "refine_iterations": 0}


def system_defaults(name: Optional[str]) -> dict:
    """What a new user gets on system ``name``: steps, C, final corrections, samples, τ and γ."""
    return {**STEP_DEFAULTS, **SYSTEM_DEFAULTS.get(name, SYSTEM_DEFAULTS[None])}


def _number(key: str, value, kind, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"setting {key} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise SettingsError(f"setting {key} must be finite, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise SettingsError(f"setting {key} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if not lo <= value <= hi:
        raise SettingsError(f"setting {key} = {value!r} is outside {lo!r} … {hi!r}")
    return value


def check_settings(settings, strict: bool = True) -> dict:
    """The known settings of ``settings`` with their types checked, unknown keys dropped.

    ``strict``: a bad value raises ``SettingsError``; otherwise it is left out (saved
    preferences of an older version must not stop the app from starting).
    """
    if not isinstance(settings, dict):
        if strict:
            raise SettingsError(f"sampler settings must be a mapping, got {type(settings).__name__}")
        return {}
    out = {}
    for key, spec in FIELDS.items():
        if key not in settings:
            continue
        value = settings[key]
        try:
            if spec[0] is str:
                if not isinstance(value, str) or value not in spec[1]:
                    raise SettingsError(f"setting {key} must be one of {', '.join(spec[1])}, got {value!r}")
                out[key] = value
            else:
                out[key] = _number(key, value, *spec)
        except SettingsError:
            if strict:
                raise
    return out


def check_seed(value, name: str = "seed") -> int:
    return _number(name, value, int, 0, SEED_MAX)


def residual_table(n_samples: int = 8) -> list[tuple]:
    """``(case, steps, C, residual std, σ_y)`` of the cases above with the shipped models."""
    import numpy as np

    from sda_gui.core.diffusion.checkpoint import load_checkpoint, shipped_model_paths
    from sda_gui.core.methods.registry import run_method
    from sda_gui.core.observation import synthesize
    from sda_gui.core.systems import make_system

    rows = []
    for name, length, pattern, std in (("lorenz63", 65, "every 8th state", 0.4), ("lorenz63", 65, "20 % random", 1.0),
                                       ("lorenz96", 64, "20 % random", 1.0)):
        system = make_system(name)
        truth = system.simulate(1, length, seed=0)[0].numpy()
        if pattern == "every 8th state":
            mask = np.zeros(truth.shape, bool)
            mask[::8] = True
        else:
            mask = np.random.default_rng(0).random(truth.shape) < 0.2
        obs = synthesize(truth, mask, std, seed=0)
        model = load_checkpoint(shipped_model_paths(name, "cpu")[0])
        for steps, c in ((16, 0), (32, 0), (32, 1), (64, 1)):
            x = run_method("sda", system, obs, n_samples, {"steps": steps, "corrections": c, "tau": 0.5},
                           model=model, seed=0).members.numpy()
            rows.append((f"{name}, {pattern}", steps, c, float((x[:, mask] - obs.values[mask]).std()), std))
    return rows


if __name__ == "__main__":
    for case, steps, c, resid, std in residual_table():
        print(f"{case:32s} steps {steps:3d}  C {c}  residual std {resid:7.3f}  (σ_y {std:g})")


def dynamics_apply(settings: dict, system) -> bool:
    """Whether the form's dynamics q is part of a run: q > 0, SDA guidance, a system with a transition."""
    return (float(settings.get("dynamics_std", 0.0)) > 0 and settings.get("guidance") == "sda"
            and getattr(system, "has_dynamics", True))


def refine_apply(settings: dict, system) -> bool:
    """Whether the form's refinement is part of a run: K > 0 and a system with a transition (any guidance)."""
    return int(settings.get("refine_iterations", 0)) > 0 and getattr(system, "has_dynamics", True)
