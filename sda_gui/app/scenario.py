"""The default scenario, ready before the engine (torch + ``sda_gui.core``) has loaded.

The window opens on a Lorenz-96 truth simulated by the core from a fixed seed. Importing
torch takes longer than the whole window, so the truth of that one scenario is kept in
``default_scenario.npz`` next to this module, written by the core itself
(``python -m sda_gui.app.scenario``), together with what the views need to know of its
system (``SystemInfo``: name, title, shapes, Δt, parameters). The window shows it at once;
once the engine has loaded, the core simulates the scenario again on the engine's thread
(``check_default_truth``) and the window swaps that in should it differ (another torch,
another CPU), so the core stays the only source of trajectories. A test checks the file
against the core. Without the file the window waits for the engine and simulates.

Observations of the default scenario are drawn here with numpy exactly as the core's
``synthesize`` draws direct observations (same generator, same arithmetic; a test checks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["DEFAULT_SCENARIO", "CACHE_PATH", "SystemInfo", "cached_default", "simulate_default",
           "write_cache", "synthesize_direct", "check_default_truth", "core_default_truth"]

#: what the window shows at start: a Lorenz-96 truth and a sparse random pattern
DEFAULT_SCENARIO = {"system": "lorenz96", "params": {"n": 40, "forcing": 8.0}, "length": 64, "seed": 0,
                    "density": 0.2, "pattern_seed": 0, "obs_std": 1.0, "obs_seed": 0}
CACHE_PATH = Path(__file__).with_name("default_scenario.npz")


class SystemInfo:
    """What the views read of a system (name, title, shapes, Δt, parameters), without dynamics.

    It stands for the default system until the engine has loaded; ``AppState.ensure_engine``
    then replaces it by the core's system of the same configuration.
    """

    pending = True

    def __init__(self, name: str, title: str, state_shape, variable_names, params: dict):
        self.name = str(name)
        self.title = str(title)
        self.state_shape = tuple(int(n) for n in state_shape)
        self.variable_names = list(variable_names)
        self.params = dict(params)

    @property
    def dt(self) -> float:
        return float(self.params.get("dt", 1.0))

    def config(self) -> dict:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def of(cls, system) -> "SystemInfo":
        return cls(system.name, system.title, system.state_shape, system.variable_names, system.params)

    def describes(self, system) -> bool:
        """Whether ``system`` is the one this stands for (same name, title, shapes and parameters)."""
        return (self.name == system.name and self.title == system.title
                and self.state_shape == tuple(system.state_shape)
                and self.variable_names == list(system.variable_names) and self.params == dict(system.params))

    def __getattr__(self, name):
        # anything beyond the description (simulate, normalization, …) needs the engine
        raise AttributeError(f"{self.name} is not loaded yet ('{name}' needs the engine: AppState.ensure_engine)")

    def __repr__(self) -> str:
        return f"SystemInfo({self.name}, {self.params})"


def _scenario_key(sc: dict) -> dict:
    return {"system": sc["system"], "params": dict(sc["params"]), "length": int(sc["length"]), "seed": int(sc["seed"])}


def cached_default(path: Path = CACHE_PATH) -> Optional[tuple[SystemInfo, np.ndarray]]:
    """``(system info, truth)`` of the default scenario from the file, or None (missing, other scenario)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            truth = np.asarray(f["truth"], dtype=np.float32)
        if meta.get("scenario") != _scenario_key(DEFAULT_SCENARIO):
            return None
        s = meta["system"]
        info = SystemInfo(s["name"], s["title"], s["state_shape"], s["variable_names"], s["params"])
        if truth.shape != (DEFAULT_SCENARIO["length"], *info.state_shape):
            return None
        return info, truth
    except (OSError, KeyError, ValueError, TypeError):
        return None


def simulate_default():
    """``(system, truth)`` of the default scenario, simulated by the core (needs the engine)."""
    from sda_gui.core.systems import make_system

    sc = DEFAULT_SCENARIO
    system = make_system(sc["system"], **sc["params"])
    truth = system.simulate(1, sc["length"], seed=sc["seed"])[0].numpy().astype(np.float32)
    return system, truth


def write_cache(path: Path = CACHE_PATH) -> Path:
    """Simulates the default scenario with the core and writes the file the window starts from."""
    import torch

    system, truth = simulate_default()
    meta = {"scenario": _scenario_key(DEFAULT_SCENARIO),
            "system": {"name": system.name, "title": system.title, "state_shape": list(system.state_shape),
                       "variable_names": list(system.variable_names), "params": dict(system.params)},
            "torch": torch.__version__, "written_by": "python -m sda_gui.app.scenario"}
    with open(path, "wb") as f:
        np.savez_compressed(f, truth=truth, meta=np.array(json.dumps(meta)))
    return Path(path)


_CORE_TRUTH: dict = {}


def check_default_truth():
    """The core's default truth, simulated on the engine's thread (``Engine.start(tasks=…)``)."""
    _CORE_TRUTH["truth"] = simulate_default()[1]


def core_default_truth() -> Optional[np.ndarray]:
    """What ``check_default_truth`` found, None if it has not run."""
    return _CORE_TRUTH.get("truth")


def synthesize_direct(truth: np.ndarray, std: float, seed: int) -> np.ndarray:
    """Values ``truth + σ·noise`` of every entry, as ``core.observation.synthesize`` draws them
    for direct observations with a full mask (float64, before the app's float32)."""
    clean = np.asarray(truth, dtype=np.float64)
    rng = np.random.default_rng(seed)
    std_arr = np.broadcast_to(np.asarray(std, dtype=np.float64), clean.shape)
    full = np.ones(clean.shape, dtype=bool)
    return np.where(full, clean + std_arr * rng.standard_normal(clean.shape), 0.0)


if __name__ == "__main__":
    print(f"wrote {write_cache()}")
