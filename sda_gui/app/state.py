"""The application's data model: what the user is working on, with change signals.

One ``AppState`` holds the system, its truth trajectory (simulated or loaded), the
observation pattern being edited, the measured values, the score model and the last
results. Views read it and call its methods; they never keep their own copies of the
data, so a test that drives the window can check everything here.

Results keep a snapshot of the truth and the observation they were computed from, so
editing the pattern afterwards does not make the results view lie.

Observations may go through an operator (``"coarsen:8"``, ``"subsample:4"``, ``"vorticity"``,
``"saturate"``, chains such as ``"vorticity+saturate"``, ``"plugin:NAME"``: any spec of the
core's grammar): then the pattern, the values and σ live on the operator's output grid
``(L, *op.output_shape(s))`` — the vorticity of a ``(2, H, W)`` velocity is painted on
``(1, H, W)``, a saturated state on the state's own grid.
The operator is the editor's *space*, so undo restores operator and pattern together;
values drawn or loaded for one operator's grid are kept aside while another is shown.

``dirty`` work is what differs from the last clean point (a session saved or opened,
the default scenario): ``unsaved_work()`` names what a new truth, a new scenario or
quitting would throw away, so the window can ask first. Observation values loaded
from a file survive a new truth on the same grid (with a note): only *Generate from
truth* replaces them.

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
from .observation_state import ObservationValues, observation_error
from .operators import apply as apply_operator
from .operators import convert_mask, normalize, observed_shape

if TYPE_CHECKING:  # the engine loads after the window shows: no core import at module load
    from sda_gui.core.observation import Observation
    from sda_gui.core.systems import DynamicalSystem

__all__ = ["AppState", "Results", "observation_error"]


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


def _initial_system():
    """The core's Lorenz-96 when the engine is loaded, else its description from the scenario file."""
    if not engine.ENGINE.ready():
        cached = scenario.cached_default()
        if cached is not None:
            return cached[0]
    return _make_system("lorenz96")


class AppState(ObservationValues, QObject):
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
        #: what the last clean point held: (results, pattern, values) — see ``unsaved_work``
        self._clean: tuple = (None, self.editor.mask.copy(), None)

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
                  dataset: Optional[np.ndarray] = None, source: str = "", keep_loaded_values: bool = True):
        """A new truth trajectory ``(L, *s)``; keeps the pattern when the grid is unchanged.

        Observation values loaded from a file stay too (``keep_loaded_values``): they are
        measurements, which a new truth does not change.
        """
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
        kept = self._values_kept_for_new_truth() if same_grid and keep_loaded_values else None
        self._forget_values()
        if kept is not None:
            self.obs_values, self._values_std, self._values_seed, self._values_space = kept
            self.message.emit("the observation values loaded from a file are kept for the new truth "
                              "(Generate from truth replaces them)")
        if not same_grid:
            self.editor.reset(np.zeros((truth.shape[0], *grid), dtype=bool), space=spec)
        if system is not None:
            self.systemChanged.emit()
        self.truthChanged.emit()
        self.observationsChanged.emit()

    def _values_kept_for_new_truth(self):
        """Loaded values are measurements, not a function of the truth: they stay (same grid)."""
        if not self.values_from_file:
            return None
        return self.obs_values, self._values_std, None, self._values_space

    def _operator_for(self, system: "DynamicalSystem", state_shape: tuple) -> tuple[Optional[str], tuple]:
        """The operator kept for a new truth: the current one for the same system where it fits."""
        spec = self.operator
        if spec is not None and system.name == self.system.name:
            try:
                return spec, observed_shape(state_shape, spec)
            except ValueError:
                self.message.emit(f"{spec} does not fit states of shape {state_shape}: observing them directly")
        return None, tuple(state_shape)

    # unsaved work -------------------------------------------------------------------------
    def mark_clean(self):
        """What the state holds now is saved (or needs no saving): nothing is at risk."""
        self._clean = (self.results, self.mask.copy(), self.obs_values if self.values_from_file else None)

    @property
    def values_from_file(self) -> bool:
        """The observation values came from a file (not drawn from the truth)."""
        return self.obs_values is not None and self._values_seed is None

    def unsaved_work(self) -> list[str]:
        """What would be lost if everything were replaced now, in words (empty: nothing)."""
        results, mask, values = self._clean
        out = []
        if self.results is not None and self.results is not results:
            out.append("the results")
        if self.editor.count and (mask.shape != self.mask.shape or not np.array_equal(mask, self.mask)):
            out.append("the observation pattern")
        if self.values_from_file and self.obs_values is not values:
            out.append("the observation values loaded from a file")
        return out

    def work_lost_by_new_truth(self, length: int, system=None) -> list[str]:
        """What of ``unsaved_work`` a new truth of ``length`` states of ``system`` would throw away.

        The pattern and loaded values survive on the same grid; results survive while the
        results view can still draw them (same kind of states).
        """
        target = system if system is not None else self.system
        shape = tuple(target.state_shape)
        spec = self.operator if target.name == self.system.name else None
        try:
            grid = observed_shape(shape, spec)
        except ValueError:
            spec, grid = None, shape
        same_grid = self.editor.shape == (int(length), *grid) and spec == self.operator
        lost = []
        for item in self.unsaved_work():
            if item == "the results":
                if shape != self.state_shape:
                    lost.append(item)
            elif not same_grid:
                lost.append(item)
        return lost

    @property
    def dirty(self) -> bool:
        return bool(self.unsaved_work())

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
