"""The sampler form of the *Assimilate* panel: guidance, steps, corrections, τ, γ, samples, device, seed.

*Final corrections* F replace C on the steps that end below t = 0.125, where the
samples take their fine detail (``core.diffusion.sampler``); "same as C" (−1) leaves
them off. On dense Lorenz-96 observations F = 8 lowered the posterior-mean RMSE from
0.220 to 0.209 for 1.44× the network calls, on sparse ones it did worse
(``docs/benchmarks.md``), so it is off by default.

*Dynamics q* > 0 also guides the samples by the system's own transition with a model
error q per step (``core.diffusion.guidance.dynamics``); it needs the SDA guidance and
a system with dynamics (not one built from data), and is greyed out otherwise. It is
in physical units, so each kind of system starts with its own value: q = 0.05 on
Lorenz-96 (lower RMSE on every Lorenz-96 benchmark row), off on the others.

*Refine* K > 0 then minimises each sample's own perturbed weak-constraint 4D-Var cost
with the system's transition for K L-BFGS iterations of 10 per stage
(``core.methods.weak_constraint.refine``; on Lorenz-96 four stages of a continuation in the
model error, so a run takes 4 K iterations). It works with every guidance but needs a
system with dynamics, and is greyed out otherwise; off (0) by default on every system.

Widgets and their ranges come from ``sampler_config.FIELDS``. Switching to another kind
of system applies that system's defaults (``sampler_config.SYSTEM_DEFAULTS``) for steps,
corrections and samples: Lorenz-63's 64 steps must not follow the user to a 64² flow,
nor a flow's 2 samples back. Another truth of the same kind of system keeps what the
user set.
"""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox

from .common import available_devices
from .sampler_config import FIELDS, GUIDANCES, check_settings, system_defaults

__all__ = ["SamplerForm", "GUIDANCES"]

def _spin(key: str, tip: str) -> QSpinBox:
    _, lo, hi = FIELDS[key]
    w = QSpinBox()
    w.setRange(lo, hi)
    w.setToolTip(tip)
    return w


def _double(key: str, decimals: int, step: float, value: float, tip: str) -> QDoubleSpinBox:
    _, lo, hi = FIELDS[key]
    w = QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setDecimals(decimals)
    w.setSingleStep(step)
    w.setValue(value)
    w.setToolTip(tip)
    return w


class SamplerForm(QGroupBox):
    """The sampler settings as widgets; ``settings()`` / ``apply(dict)`` read and write them."""

    def __init__(self, system_name: str, parent=None):
        super().__init__("Sampler", parent)
        self.guidance_combo = QComboBox()
        for key, label in GUIDANCES.items():
            self.guidance_combo.addItem(label, key)
        self.guidance_combo.setToolTip("How the observations steer the diffusion sampler")
        self.steps_spin = _spin("steps", "Sampler steps from noise (t = 1) to data (t = 0); more steps, "
                                         "fewer blow-ups")
        self.corrections_spin = _spin("corrections", "Langevin corrections C after each step (cost × (1 + C)); "
                                                     "C ≥ 1 keeps samples on the attractor")
        self.final_spin = _spin("final_corrections", "Langevin corrections of the last steps (t < 0.125) in "
                                                     "place of C; can sharpen a fit to dense observations")
        self.final_spin.setSpecialValueText("same as C")
        self.final_spin.setValue(-1)
        self.dynamics_spin = _double("dynamics_std", 3, 0.01, 0.0, "Also guide by the system's own transition, "
                                     "allowing this model error per step (physical units); off: 0. "
                                     "The term is firmer the more steps a run takes (up to 256) and "
                                     "looser below 32, where a firm one would overshoot")
        self.dynamics_spin.setSpecialValueText("off")
        self.refine_spin = _spin("refine_iterations", "Then minimise each sample's weak-constraint 4D-Var cost "
                                 "(the system's own transition, a model error per step: 0.005 on Lorenz-96, "
                                 "reached in 4 stages that halve it from 0.04; else 0.02 in one stage) for this "
                                 "many L-BFGS iterations of 10 per stage, from the sample and from an LETKF "
                                 "member, keeping the lower minimum. Needs the system's dynamics; off: 0.")
        self.refine_spin.setSingleStep(10)
        self.refine_spin.setSpecialValueText("off")
        self.refine_spin.setValue(0)
        self.tau_spin = _double("tau", 3, 0.05, 0.5, "Langevin step size τ of the corrections")
        self.gamma_spin = _double("gamma", 4, 0.005, 1e-2, "γ of the SDA likelihood covariance Σ_y + σ²/μ² γ I")
        self.samples_spin = _spin("n_samples", "Number of posterior trajectories to draw")
        self.device_combo = QComboBox()
        self.device_combo.addItem("auto", "auto")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.addItem("CUDA", "cuda")
        self.fill_devices()
        self.seed_spin = _spin("seed", "Seed of the sampler noise")
        self.preview_check = QCheckBox("live preview of the estimate")
        self.preview_check.setChecked(True)

        form = QFormLayout(self)
        form.addRow("guidance", self.guidance_combo)
        form.addRow("steps", self.steps_spin)
        form.addRow("corrections C", self.corrections_spin)
        form.addRow("final corrections", self.final_spin)
        form.addRow("dynamics q", self.dynamics_spin)
        form.addRow("refine", self.refine_spin)
        form.addRow("τ", self.tau_spin)
        form.addRow("γ", self.gamma_spin)
        form.addRow("samples", self.samples_spin)
        form.addRow("device", self.device_combo)
        form.addRow("seed", self.seed_spin)
        form.addRow(self.preview_check)
        self.guidance_combo.currentIndexChanged.connect(lambda _: self._guidance_changed())

        self.system_name = system_name
        self.has_dynamics = True
        self._set_values(system_defaults(system_name))

    def fill_devices(self):
        """Names the automatic choice and greys out CUDA where there is none (or not known yet)."""
        devices = available_devices()
        cuda = "cuda" in devices
        self.device_combo.setItemText(0, f"auto ({'cuda' if cuda else 'cpu'})")
        self.device_combo.setItemText(2, "CUDA" if cuda else "CUDA (not available here)")
        self.device_combo.model().item(2).setEnabled(cuda)

    def _guidance_changed(self):
        sda = self.guidance_combo.currentData() == "sda"
        self.gamma_spin.setEnabled(sda)
        self.dynamics_spin.setEnabled(sda and self.has_dynamics)
        self.refine_spin.setEnabled(self.has_dynamics)

    def set_dynamics_available(self, available: bool):
        """A system built from data has no transition: the dynamics term and the refinement are greyed out."""
        self.has_dynamics = bool(available)
        self._guidance_changed()

    # per system -------------------------------------------------------------------------
    def switch_system(self, name: str) -> bool:
        """Another kind of system: its default steps, C, final corrections, samples, τ, γ. True if applied."""
        if name == self.system_name:
            return False
        self.system_name = name
        self._set_values(system_defaults(name))
        return True

    def _set_values(self, values: dict):
        for key, spin in (("steps", self.steps_spin), ("corrections", self.corrections_spin),
                          ("final_corrections", self.final_spin), ("refine_iterations", self.refine_spin),
                          ("n_samples", self.samples_spin)):
            if key in values:
                spin.setValue(int(values[key]))
        for key, spin in (("tau", self.tau_spin), ("gamma", self.gamma_spin), ("dynamics_std", self.dynamics_spin)):
            if key in values:
                spin.setValue(float(values[key]))

    # values -----------------------------------------------------------------------------
    def set_guidance(self, key: str):
        i = self.guidance_combo.findData(key)
        if i < 0:
            raise ValueError(f"unknown guidance '{key}' (known: {', '.join(GUIDANCES)})")
        self.guidance_combo.setCurrentIndex(i)

    def set_device(self, key: str):
        i = self.device_combo.findData(key)
        if i < 0:
            raise ValueError(f"unknown device '{key}'")
        self.device_combo.setCurrentIndex(i)

    def settings(self) -> dict:
        return {
            "guidance": self.guidance_combo.currentData(),
            "steps": self.steps_spin.value(),
            "corrections": self.corrections_spin.value(),
            "final_corrections": self.final_spin.value(),
            "tau": self.tau_spin.value(),
            "gamma": self.gamma_spin.value(),
            "dynamics_std": self.dynamics_spin.value(),
            "refine_iterations": self.refine_spin.value(),
            "n_samples": self.samples_spin.value(),
            "device": self.device_combo.currentData(),
            "seed": self.seed_spin.value(),
        }

    def apply(self, s: dict, strict: bool = False):
        """Sets the known settings of ``s`` (from preferences or a session).

        Values are checked against the widgets' ranges first (``sampler_config``):
        ``strict`` raises ``SettingsError`` for a bad one; otherwise it is skipped. A CUDA
        device where there is none stays on the current choice.
        """
        s = check_settings(s, strict=strict)
        if "guidance" in s:
            self.set_guidance(s["guidance"])
        for key, spin in (("steps", self.steps_spin), ("corrections", self.corrections_spin),
                          ("final_corrections", self.final_spin), ("refine_iterations", self.refine_spin),
                          ("n_samples", self.samples_spin), ("seed", self.seed_spin)):
            if key in s:
                spin.setValue(int(s[key]))
        for key, spin in (("tau", self.tau_spin), ("gamma", self.gamma_spin), ("dynamics_std", self.dynamics_spin)):
            if key in s:
                spin.setValue(float(s[key]))
        if "device" in s:
            i = self.device_combo.findData(s["device"])
            if self.device_combo.model().item(i).isEnabled():
                self.device_combo.setCurrentIndex(i)
