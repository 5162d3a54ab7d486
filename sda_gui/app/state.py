"""The application's data model: what the user is working on, with change signals.

One ``AppState`` holds the system, its truth trajectory (simulated or loaded), the
observation pattern being edited, the measured values, the score model and the last
results. Views read it and call its methods; they never keep their own copies of the
data, so a test that drives the window can check everything here.

Results keep a snapshot of the truth and the observation they were computed from, so
editing the pattern afterwards does not make the results view lie.

Observations may go through an operator (``"coarsen:8"``, ``"subsample:4"``): then the
pattern, the values and σ live on the operator's output grid ``(L, *op.output_shape(s))``.
The operator is the editor's *space*, so undo restores operator and pattern together;
values drawn or loaded for one operator's grid are kept aside while another is shown.

The state works before the engine (torch + ``sda_gui.core``) has loaded: its system is
then a ``scenario.SystemInfo`` and direct observations are drawn with numpy.
``ensure_engine()`` waits for the engine, puts the core's system in place and emits
``engineReady``; everything that needs the core calls it first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from . import engine, scenario
from .mask_editor import MaskEditor
from .operators import apply as apply_operator
from .operators import convert_mask, normalize, observed_shape

if TYPE_CHECKING:  # the engine loads after the window shows: no core import at module load
    from sda_gui.core.observation import Observation
    from sda_gui.core.systems import DynamicalSystem

__all__ = ["AppState", "Results", "system_for_shape"]


@dataclass
class Results:
    """Posterior samples and what they were conditioned on."""

    samples: np.ndarray                  # (N, L, *s) physical units
    observation: "Observation"
    truth: Optional[np.ndarray] = None   # (L, *s)
    settings: dict = field(default_factory=dict)
    preview: bool = False                # a denoised estimate while the sampler runs
    metrics: Optional[dict] = None       # computed by the worker, so the UI thread never waits on them
    #: what the results view draws of these samples, computed by the worker
    #: (``result_plots.PlotData``); the view recomputes it when it shows something else
    prepared: Optional[object] = None

    @property
    def length(self) -> int:
        return int(self.samples.shape[1])


def _make_system(name: str, **params):
    engine.ENGINE.wait()
    from sda_gui.core.systems import make_system

    return make_system(name, **params)


def observation_error(text: str) -> ValueError:
    """The core's ``ObservationError`` (a ValueError) with ``text``."""
    engine.ENGINE.wait()
    from sda_gui.core.observation import ObservationError

    return ObservationError(text)


def _initial_system():
    """The core's Lorenz-96 when the engine is loaded, else its description from the scenario file."""
    if not engine.ENGINE.ready():
        cached = scenario.cached_default()
        if cached is not None:
            return cached[0]
    return _make_system("lorenz96")


def system_for_shape(state_shape: tuple, meta: Optional[dict] = None) -> "DynamicalSystem":
    """The system a file's trajectories belong to: from its metadata, else from the state shape."""
    make_system = _make_system
    meta = meta or {}
    cfg = meta.get("system")
    if isinstance(cfg, dict) and cfg.get("name"):
        return make_system(cfg["name"], **cfg.get("params", {}))
    if isinstance(cfg, str) and cfg:
        return make_system(cfg, **meta.get("params", {}))
    shape = tuple(state_shape)
    if shape == (3,):
        return make_system("lorenz63")
    if len(shape) == 1 and shape[0] >= 4:
        return make_system("lorenz96", n=shape[0])
    if len(shape) == 3 and shape[0] == 2:
        try:
            return make_system("kolmogorov", size=shape[-1], resolution=4 * shape[-1])
        except ValueError:
            pass
    raise ValueError(f"cannot tell which system states of shape {shape} belong to "
                     "(add a 'system' entry to the file's metadata)")


class AppState(QObject):
    systemChanged = Signal()
    truthChanged = Signal()
    patternChanged = Signal()
    observationsChanged = Signal()
    operatorChanged = Signal()
    modelChanged = Signal()
    resultsChanged = Signal()
    previewChanged = Signal()
    message = Signal(str)
    engineReady = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.system = _initial_system()
        self._engine_loaded = not getattr(self.system, "pending", False)
        self.truth: Optional[np.ndarray] = None          # (L, *s)
        self.dataset: Optional[np.ndarray] = None        # (M, T, *s): training data when loaded
        self.dataset_source: str = ""
        self.editor = MaskEditor((1, *self.system.state_shape), on_change=self._pattern_changed)
        self.obs_std: float = 1.0
        self.obs_seed: int = 0
        #: measured value of every entry, NaN where unknown; the mask picks the observed ones
        self.obs_values: Optional[np.ndarray] = None
        self._values_std: Optional[float] = None
        self._values_seed: Optional[int] = None   # None: values came from a file, not drawn
        self._values_space: Optional[str] = None  # the operator whose grid obs_values lie on
        self._stash: dict = {}                    # operator → values of a grid not shown now
        self._observed_truth = (None, None, None)  # (truth, operator, op(truth)) cache
        self.model = None
        self.model_path: Optional[str] = None
        self.results: Optional[Results] = None
        self.preview: Optional[Results] = None

    # engine -----------------------------------------------------------------------------
    @property
    def engine_loaded(self) -> bool:
        """Whether the core is in use (``ensure_engine`` has run): False only in the first seconds."""
        return self._engine_loaded

    def ensure_engine(self):
        """Waits for the engine (loads it if nothing did) and swaps the core's system in.

        Emits ``engineReady`` once; the views showing the system see the same one (a
        ``systemChanged`` only if the core's differs from its description).
        """
        if self._engine_loaded:
            return
        engine.ENGINE.wait()
        self._engine_loaded = True
        info = self.system
        if getattr(info, "pending", False):
            try:
                real = _make_system(info.name, **info.params)
            except (ValueError, TypeError):  # the core changed its parameters: its default then
                real = _make_system(info.name)
            self.system = real
            if not info.describes(real):
                self.systemChanged.emit()
        self.engineReady.emit()

    # shapes -----------------------------------------------------------------------------
    @property
    def state_shape(self) -> tuple:
        return tuple(self.system.state_shape)

    @property
    def length(self) -> int:
        return int(self.editor.shape[0])

    @property
    def mask(self) -> np.ndarray:
        return self.editor.mask

    # operator ---------------------------------------------------------------------------
    @property
    def operator(self) -> Optional[str]:
        """The observation operator's spec (``"coarsen:8"``), None when states are observed directly."""
        return self.editor.space

    @property
    def observed_grid(self) -> tuple:
        """Shape of one observed state: ``op.output_shape(state_shape)``."""
        return observed_shape(self.state_shape, self.operator)

    def observed_truth(self) -> Optional[np.ndarray]:
        """``op(truth)`` ``(L, *observed_grid)``: what the observations measure, before noise."""
        if self.truth is None:
            return None
        truth, spec, out = self._observed_truth
        if truth is not self.truth or spec != self.operator:
            out = apply_operator(self.truth, self.operator, len(self.state_shape))
            self._observed_truth = (self.truth, self.operator, out)
        return out

    def set_operator(self, spec: Optional[str]):
        """Observes through another operator: the pattern moves to its grid as one undo step.

        Raises ObservationError (one line) for an unknown operator or one that does not
        fit the state grid; nothing changes then. Values drawn from the truth are drawn
        again on the new grid with the same seed and σ.
        """
        spec = normalize(spec)
        if spec == self.operator:
            return
        observed_shape(self.state_shape, spec)
        redraw = self.obs_values is not None and self._values_seed is not None and self.truth is not None
        before = self.editor.count
        self.editor.change_space(convert_mask(self.mask, self.operator, spec, self.state_shape), spec)
        if redraw and self.obs_values is None:
            self.generate_observations()
        if before:
            # the conversion is a guess (a cell observed where it covers anything observed): say so
            self.message.emit(f"observing through {spec or 'the identity'}: the pattern became "
                              f"{self.editor.count} cells (undo brings back the previous one)")

    def _pattern_changed(self):
        if self.editor.space != self._values_space:
            self._switch_values(self.editor.space)
            self.operatorChanged.emit()
        self.patternChanged.emit()

    def _switch_values(self, space: Optional[str]):
        """Puts the values of the grid left aside and brings back those of ``space``'s grid."""
        if self.obs_values is not None:
            self._stash[self._values_space] = (self.obs_values, self._values_std, self._values_seed)
        self.obs_values, self._values_std, self._values_seed = self._stash.pop(space, (None, None, None))
        self._values_space = space
        self.observationsChanged.emit()

    def _forget_values(self):
        self.obs_values = None
        self._values_std = None
        self._values_seed = None
        self._stash.clear()

    # system and truth -------------------------------------------------------------------
    def set_system(self, system: "DynamicalSystem"):
        self.system = system
        self.systemChanged.emit()

    def set_truth(self, truth: np.ndarray, system: Optional["DynamicalSystem"] = None,
                  dataset: Optional[np.ndarray] = None, source: str = ""):
        """A new truth trajectory ``(L, *s)``; keeps the pattern when the grid is unchanged."""
        truth = np.asarray(truth, dtype=np.float32)
        target = system if system is not None else self.system
        if tuple(truth.shape[1:]) != tuple(target.state_shape):
            raise ValueError(f"truth of shape {truth.shape} does not fit {target.title} "
                             f"states {tuple(target.state_shape)}")
        spec, grid = self._operator_for(target, tuple(truth.shape[1:]))
        self.system = target
        same_grid = self.editor.shape == (truth.shape[0], *grid) and spec == self.operator
        self.truth = truth
        self.dataset = dataset
        self.dataset_source = source
        self._forget_values()
        if not same_grid:
            self.editor.reset(np.zeros((truth.shape[0], *grid), dtype=bool), space=spec)
        if system is not None:
            self.systemChanged.emit()
        self.truthChanged.emit()
        self.observationsChanged.emit()

    def _operator_for(self, system: "DynamicalSystem", state_shape: tuple) -> tuple[Optional[str], tuple]:
        """The operator kept for a new truth: the current one for the same system where it fits."""
        spec = self.operator
        if spec is not None and system.name == self.system.name:
            try:
                return spec, observed_shape(state_shape, spec)
            except ValueError:
                self.message.emit(f"{spec} does not fit states of shape {state_shape}: observing them directly")
        return None, tuple(state_shape)

    # observations -----------------------------------------------------------------------
    def set_obs_std(self, std: float):
        std = float(std)
        if std <= 0:
            raise ValueError("the observation noise std must be > 0")
        if std != self.obs_std:
            self.obs_std = std
            self.observationsChanged.emit()

    def set_obs_seed(self, seed: int):
        seed = int(seed)
        if seed != self.obs_seed:
            self.obs_seed = seed
            self.observationsChanged.emit()

    @property
    def values_stale(self) -> bool:
        """True when some observed entry has no value, or values were drawn with another σ or seed."""
        if self.obs_values is None or self.obs_values.shape != self.mask.shape:
            return self.editor.count > 0
        if self._values_std is not None and self._values_std != self.obs_std:
            return True
        if self._values_seed is not None and self._values_seed != self.obs_seed:
            return True
        return bool(np.isnan(self.obs_values[self.mask]).any())

    def generate_observations(self, seed: Optional[int] = None, std: Optional[float] = None):
        """Draws ``y = A(truth) + σ·noise`` (seeded) for every entry; the mask picks the observed ones.

        Drawing every entry (not only the observed ones) keeps a cell's value the same
        when the pattern is edited afterwards.
        """
        if self.truth is None:
            raise observation_error("there is no truth trajectory to observe: simulate or load one first")
        if seed is not None:
            self.obs_seed = int(seed)
        if std is not None:
            self.set_obs_std(std)
        if self.operator is None and not engine.ENGINE.ready():
            # the window's first seconds: the same numbers the core would draw
            values = scenario.synthesize_direct(self.truth, self.obs_std, self.obs_seed)
        else:
            engine.ENGINE.wait()
            from sda_gui.core.observation import synthesize

            full = np.ones(self.mask.shape, dtype=bool)
            values = synthesize(self.truth, full, self.obs_std, seed=self.obs_seed, operator=self.operator).values
        self.obs_values = values.astype(np.float32)
        self._values_std = self.obs_std
        self._values_seed = self.obs_seed
        self._values_space = self.operator
        self.observationsChanged.emit()

    def observation(self, regenerate: bool = True) -> "Observation":
        """The observation to assimilate: the current pattern, values and σ (validated)."""
        self.ensure_engine()
        from sda_gui.core.observation import Observation, ObservationError

        if self.values_stale and regenerate and self.truth is not None:
            self.generate_observations()
            self.message.emit(f"observations drawn from the truth (seed {self.obs_seed}, σ = {self.obs_std:g})")
        if self.obs_values is None:
            raise ObservationError("no observed values: generate them from the truth or load an observation file")
        values = np.where(self.mask, np.nan_to_num(self.obs_values), 0.0)
        obs = Observation(mask=self.mask.copy(), values=values, std=self.obs_std, operator=self.operator)
        return obs.validate(self.state_shape, self.length)

    def set_observation(self, obs: "Observation"):
        """Adopts a loaded observation: its operator, pattern, values and σ (one undo step)."""
        spec = normalize(obs.operator)
        obs.validate(self.state_shape, allow_empty=True)
        if obs.length != self.length:
            grid = "×".join(map(str, obs.mask.shape[1:]))
            raise observation_error(f"observation covers {obs.length} states (of {grid}), "
                                   f"the current trajectory has {self.length} states")
        std = np.asarray(obs.std)
        if std.ndim:
            observed = std[obs.mask]
            if observed.size and not np.allclose(observed, observed[0]):
                self.message.emit("per-entry std in the file: the editor uses their mean")
            std = float(observed.mean()) if observed.size else 1.0
        values = np.where(obs.mask, obs.values, np.nan).astype(np.float32)
        self.editor.change_space(obs.mask, spec)
        self.obs_std = float(std)
        self.obs_values = values
        self._values_std = self.obs_std
        self._values_seed = None
        self._values_space = spec
        self.observationsChanged.emit()

    def restore_observations(self, mask: np.ndarray, values: Optional[np.ndarray], std: float, seed: int,
                             operator: Optional[str] = None):
        """Puts back a saved operator, pattern, values and σ exactly (a reopened session), as a new history."""
        spec = normalize(operator)
        mask = np.asarray(mask, dtype=bool)
        grid = (self.length if self.truth is None else self.truth.shape[0], *observed_shape(self.state_shape, spec))
        if mask.shape != grid:
            where = f" (output of {spec})" if spec else ""
            raise observation_error(f"saved pattern {mask.shape} does not fit the observed grid {grid}{where}")
        self._forget_values()
        self.editor.reset(mask, space=spec)
        self.obs_std, self.obs_seed = float(std), int(seed)
        if values is not None and np.shape(values) == mask.shape:
            self.obs_values = np.asarray(values, dtype=np.float32)
            self._values_std = self.obs_std
        self._values_space = spec
        self.observationsChanged.emit()

    # model and results ------------------------------------------------------------------
    def set_model(self, model, path: Optional[str] = None):
        self.model = model
        self.model_path = None if path is None else str(path)
        self.modelChanged.emit()

    def set_results(self, results: Optional[Results]):
        self.results = results
        self.preview = None
        self.resultsChanged.emit()

    def set_preview(self, preview: Optional[Results]):
        self.preview = preview
        self.previewChanged.emit()
