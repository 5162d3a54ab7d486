"""The observation half of the application's state: σ, the noise seed and the measured values.

Mixed into ``AppState``. Values are kept for every entry of the observed grid (NaN
where unknown) so that editing the pattern afterwards keeps each cell's value; they
are either drawn from the truth (``generate_observations``: ``y = A(truth) + σ·noise``,
seeded) or loaded from a file (``set_observation``), and ``values_stale`` says when
drawn values no longer match the σ or seed shown. ``observation()`` is what a run
assimilates: the pattern, the values and σ, validated by the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from . import engine, scenario
from .operators import normalize, observed_shape

if TYPE_CHECKING:
    from sda_gui.core.observation import Observation

__all__ = ["ObservationValues", "observation_error"]


def observation_error(text: str) -> ValueError:
    """The core's ``ObservationError`` (a ValueError) with ``text``."""
    engine.ENGINE.wait()
    from sda_gui.core.observation import ObservationError

    return ObservationError(text)



class ObservationValues:
    """σ, seed and values of the observations (the attributes live on ``AppState``)."""

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

    def load_observation(self, path) -> "Observation":
        """Reads an observation file through the core and adopts it (``set_observation``)."""
        self.ensure_engine()
        from sda_gui.core.observation import Observation

        obs = Observation.load(path)
        self.set_observation(obs)
        return obs

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

