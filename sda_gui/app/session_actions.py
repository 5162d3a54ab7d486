"""The main window's session actions: save, open (as one transaction), new default scenario.

Opening reads and checks the whole file first (``session.load_session``); only a file
that passed is applied, and it replaces truth, pattern, values, σ, settings, model and
results together. Should applying still fail half-way, the work held before is put
back from a snapshot taken just before, so an error never leaves a mix of the two.
Entry points called with ``ask=True`` (the menus) ask before unsaved work is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .common import one_line
from .session import SessionData, SessionError, load_session, save_session
from .state import Results

__all__ = ["SessionActions", "SESSION_FILTER"]

SESSION_FILTER = "SDA Studio sessions (*.h5 *.hdf5);;All files (*)"


class SessionActions:
    """Mixed into ``MainWindow`` (uses its state, panels, ``confirm`` and message methods)."""

    def session_data(self) -> SessionData:
        st = self.state
        data = SessionData(system=st.system.config(), truth=st.truth, mask=st.mask.copy(),
                           obs_values=st.obs_values, obs_std=st.obs_std, obs_seed=st.obs_seed,
                           model_path=st.model_path or "", source=st.dataset_source,
                           settings={"assimilation": self.assimilation_panel.sampler_settings(),
                                     "system_seed": self.system_panel.seed_spin.value()},
                           dataset=st.dataset, operator=st.operator, built_system=st.system, model=st.model)
        if st.results is not None:
            r = st.results
            data.samples = r.samples
            data.result_mask = r.observation.mask
            data.result_values = r.observation.values
            data.result_std = r.observation.std
            data.result_truth = r.truth
            data.result_settings = r.settings
            data.result_operator = r.observation.operator
        comp = self.compare_panel.comparison
        if comp is not None:
            data.comparison = {"rows": comp.rows, "settings": comp.settings, "truth": comp.truth,
                               "members": comp.members}
        return data

    def save_session(self, path: Optional[str] = None) -> bool:
        path = path or self._ask(True, "Save session", SESSION_FILTER, "session.h5")
        if not path:
            return False
        try:
            save_session(path, self.session_data())
        except SessionError as exc:
            self.show_error(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - whatever the file system says, in one line
            self.show_error(f"cannot save the session: {one_line(exc)}")
            return False
        self.state.mark_clean()
        self.show_message(f"session saved to {path}")
        return True

    def _busy_runs(self) -> list[str]:
        names = {"assimilate": "an assimilation", "simulate": "a simulation", "train": "a training"}
        return [names.get(r.name, r.name) for r in (self.assimilation_panel.runner, self.system_panel.runner)
                if r.running]

    def open_session(self, path: Optional[str] = None, ask: bool = False) -> bool:
        """Replaces the current work by a saved session; on a bad file shows why and keeps all."""
        path = path or self._ask(False, "Open session", SESSION_FILTER)
        if not path:
            return False
        name = Path(path).name
        busy = self._busy_runs()
        if busy:
            self.show_error(f"{busy[0]} is running: cancel it or wait for it before opening a session")
            return False
        try:
            self.state.ensure_engine()
            data = load_session(path)
        except SessionError as exc:
            self.show_error(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - never a traceback for a file
            self.show_error(f"cannot open session {name}: {one_line(exc)}")
            return False
        lost = self.state.unsaved_work()
        if ask and lost and not self.confirm(f"Opening {name} replaces {' and '.join(lost)}, which are not saved. "
                                             "Go on?"):
            return False
        snapshot = self.session_data()
        try:
            self._apply_session(data)
        except Exception as exc:  # noqa: BLE001 - put everything back, then say why in one line
            try:
                self._apply_session(snapshot)
            except Exception:  # noqa: BLE001 - the snapshot was valid a moment ago; keep what is there
                pass
            self.show_error(f"cannot open session {name}: {one_line(exc)} (your work is unchanged)")
            return False
        self.state.mark_clean()
        notes = "; ".join(data.notes)
        self.show_message(f"opened session {name}" + (f" ({notes})" if notes else ""))
        return True

    def _apply_session(self, data: SessionData):
        """Installs a checked session: everything at once."""
        st = self.state
        system = data.built_system
        blank = np.zeros((data.mask.shape[0], *system.state_shape), np.float32)
        st.set_truth(data.truth if data.truth is not None else blank, system=system, dataset=data.dataset,
                     source=data.source, keep_loaded_values=False)
        st.restore_observations(data.mask, data.obs_values, data.obs_std, data.obs_seed, operator=data.operator)
        self.grid_editor.rebuild()
        sampler = dict(data.settings.get("assimilation", {}))
        if sampler:     # saved before final corrections, the dynamics term and the refinement existed: off
            sampler = {"final_corrections": -1, "dynamics_std": 0.0, "refine_iterations": 0, **sampler}
        self.assimilation_panel.apply_settings(sampler, strict=True)
        if "system_seed" in data.settings:
            self.system_panel.seed_spin.setValue(int(data.settings["system_seed"]))
        if data.model is not None and data.model_path:
            self.assimilation_panel.use_model(data.model, data.model_path)
        if data.samples is not None:
            from sda_gui.core.observation import Observation

            obs = Observation(mask=data.result_mask, values=data.result_values,
                              std=data.result_std if data.result_std is not None else data.obs_std,
                              operator=data.result_operator)
            st.set_results(Results(samples=data.samples, observation=obs, truth=data.result_truth,
                                   settings=data.result_settings))
            self.tabs.setCurrentWidget(self.results_view)
        else:
            st.set_results(None)
        self.compare_panel.restore(data.comparison)

    def new_scenario(self) -> bool:
        """File › New default scenario: asks before unsaved work is replaced."""
        lost = self.state.unsaved_work()
        if lost and not self.confirm(f"The default scenario replaces {' and '.join(lost)}, which are not saved. "
                                     "Go on?"):
            return False
        self.load_default_scenario()
        return True
