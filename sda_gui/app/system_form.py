"""The parameters of a system as a form, and what the app knows about simulating it.

``VISIBLE_PARAMS`` lists the parameters offered per system (the solver's plumbing —
Δt, burn-in, noise — stays hidden and keeps its value); ``ParamsForm`` builds one spin
box or choice per parameter from the constructor's defaults (plus the app's, e.g. a
128² Kolmogorov solver on a CPU); a data system shows its variables, Δt and
normalisation instead (``show_data``). ``expected_seconds`` is the rough duration of a
simulation, where it is long enough to say so before it starts.
"""

from __future__ import annotations

import inspect
from typing import Optional

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QSpinBox, QWidget

from . import engine
from .common import KOLMOGOROV_CPU_RATE, kolmogorov_cpu_rate

__all__ = ["ParamsForm", "VISIBLE_PARAMS", "DEFAULT_LENGTH", "KOLMOGOROV_CPU_RATE", "app_defaults",
           "expected_seconds", "default_params", "systems", "cuda_available", "field_device"]

#: parameters offered in the form (others keep their defaults): (label, low, high) for a
#: number, (label, [choices]) for a choice; the solver's plumbing (dt, burn-in, noise) stays hidden
VISIBLE_PARAMS = {
    "lorenz63": {"sigma": ("σ", 0.1, 100.0), "rho": ("ρ", 0.1, 200.0), "beta": ("β", 0.01, 20.0)},
    "lorenz96": {"n": ("N (variables)", 4, 400), "forcing": ("F (forcing)", -50.0, 50.0)},
    "kolmogorov": {"resolution": ("simulation grid", [128, 256]), "size": ("state grid (u, v)", [64, 32]),
                   "reynolds": ("Re", 100.0, 10000.0), "drag": ("drag α", 0.0, 10.0)},
}
DEFAULT_LENGTH = {"lorenz63": 65, "lorenz96": 64, "kolmogorov": 16}


def cuda_available() -> bool:
    engine.ENGINE.wait()
    import torch

    return torch.cuda.is_available()


def systems() -> dict:
    engine.ENGINE.wait()
    from sda_gui.core.systems import SYSTEMS

    return SYSTEMS


def field_device(system) -> str:
    """Fields simulate on the GPU when there is one; a few ODE variables are faster on the CPU."""
    return "cuda" if len(system.state_shape) >= 2 and cuda_available() else "cpu"


def app_defaults(name: str) -> dict:
    """Defaults of the form where they differ from the constructor's: a 256² Kolmogorov
    simulation takes minutes on a CPU, 128² gives the same 64² states in seconds."""
    if name == "kolmogorov":
        return {"resolution": 256 if cuda_available() else 128}
    return {}


def expected_seconds(name: str, params: dict, length: int, device: str = "cpu") -> Optional[float]:
    """Rough time to simulate one truth, where it is long enough to matter (None: unknown or quick)."""
    if name != "kolmogorov" or device != "cpu":
        return None
    rate = kolmogorov_cpu_rate(params.get("resolution", 256))
    return (int(params.get("burn_in", 250)) + int(length)) / rate


def default_params(name: str, pending=None) -> dict:
    """The constructor's defaults (with the app's), or a not yet loaded system's parameters."""
    if pending is not None and pending.name == name:
        return {**dict(pending.params), **app_defaults(name)}
    cls = systems()[name]
    sig = inspect.signature(cls.__init__)
    out = {k: p.default for k, p in sig.parameters.items()
           if k != "self" and p.default is not inspect.Parameter.empty}
    return {**out, **app_defaults(name)}


def _visible_params(name: str, pending=None) -> dict:
    if name in VISIBLE_PARAMS:
        return VISIBLE_PARAMS[name]
    # unknown systems: offer their numeric parameters, except the plumbing ones
    out = {}
    for k, v in default_params(name, pending).items():
        if k in ("burn_in", "dt", "device") or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[k] = (k, 1 if isinstance(v, int) else -1e6, 4096 if isinstance(v, int) else 1e6)
    return out


def _choice_label(key: str, value) -> str:
    return f"{value}²" if key in ("resolution", "size") else str(value)


#: the exact value a spin box was given, kept beside it: a box of 4 decimals shows β = 8/3 as
#: 2.6667, and simulating with the shown value would give another truth than the CLI's for the same seed
EXACT = "exact_value"


def _field_value(w: QWidget):
    if isinstance(w, QComboBox):
        return w.currentData()
    exact = w.property(EXACT)
    # untouched (still showing the exact value rounded): the exact value, not its rounding
    if isinstance(w, QDoubleSpinBox) and exact is not None \
            and abs(w.value() - float(exact)) <= 0.5 * 10.0 ** -w.decimals() + 1e-12:
        return float(exact)
    return w.value()


def _set_exact(w: QDoubleSpinBox, value: float):
    w.setValue(float(value))
    w.setProperty(EXACT, float(value))


class ParamsForm(QGroupBox):
    """One widget per offered parameter of a system; ``changed`` is called on any edit."""

    def __init__(self, changed=None, parent=None):
        super().__init__("Parameters", parent)
        self.form = QFormLayout(self)
        self.fields: dict[str, QWidget] = {}
        self.changed = changed or (lambda: None)

    def rebuild(self, name: str, pending=None, values: Optional[dict] = None):
        """The form of system ``name`` with ``values`` on top of its defaults."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields.clear()
        self.setToolTip("")
        defaults = default_params(name, pending)
        values = {**defaults, **(values or {})}
        for key, spec in _visible_params(name, pending).items():
            if len(spec) == 2:
                label, choices = spec
                w = self._choice(key, choices, values[key])
            else:
                label, lo, hi = spec
                if isinstance(defaults.get(key), int) and not isinstance(defaults.get(key), bool):
                    w = QSpinBox()
                    w.setRange(int(lo), int(hi))
                    w.setValue(int(values[key]))
                else:
                    w = QDoubleSpinBox()
                    w.setDecimals(1 if float(hi) >= 1000 else 4)   # Re = 1000.0, not 1000.0000
                    w.setRange(float(lo), float(hi))
                    w.setSingleStep(0.1)
                    _set_exact(w, values[key])
            self.fields[key] = w
            self.form.addRow(label, w)
        dt = values.get("dt")
        if dt is not None:
            label = QLabel(f"{dt:g} (fixed)")
            label.setToolTip("The time between states is fixed: score models are trained for it")
            self.form.addRow("Δt per state", label)

    def show_data(self, system):
        """A data system's description in place of parameters: nothing to set, nothing to simulate."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields.clear()
        names = list(system.variable_names)
        shown = ", ".join(names) if len(names) <= 6 else f"{names[0]} … {names[-1]} ({len(names)})"
        params = system.params
        mean, scale = params.get("mean", []), params.get("scale", [])
        norm = ("; ".join(f"{m:.3g} ± {s:.3g}" for m, s in zip(mean, scale)) if len(mean) <= 6
                else f"mean ± scale of each of the {len(mean)} variables")
        origin = (params.get("origin") or {}).get("path", "")
        rows = [("variables", shown), ("state shape", "×".join(map(str, system.state_shape))),
                ("Δt per state", f"{system.dt:g}"), ("normalisation", norm)]
        if params.get("units"):
            rows.append(("units", str(params["units"])))
        if origin:
            rows.append(("file", origin.rsplit("/", 1)[-1]))
        for label, text in rows:
            w = QLabel(text)
            w.setWordWrap(True)
            self.form.addRow(label, w)
        tip = ("Trajectories from a file, with no dynamics: the normalisation (mean ± scale per variable) "
               "comes from the data; train a score model on them, then assimilate with SDA")
        self.setToolTip(tip)

    def _choice(self, key: str, choices: list, value) -> QComboBox:
        w = QComboBox()
        for c in choices:
            w.addItem(_choice_label(key, c), c)
        self.select(w, key, value)
        w.currentIndexChanged.connect(lambda _: self.changed())
        if key == "resolution":
            w.setToolTip("Grid the flow is simulated on, before block-averaging to the state grid; "
                         "256² is the paper's setting and takes minutes on a CPU, 128² seconds")
        elif key == "size":
            w.setToolTip("Grid of the velocity states (u, v) that are observed and assimilated; "
                         "a score model is trained for one size")
        return w

    @staticmethod
    def select(combo: QComboBox, key: str, value):
        """Selects ``value``, adding it when it is not among the offered choices (a loaded system)."""
        i = combo.findData(value)
        if i < 0:
            combo.addItem(_choice_label(key, value), value)
            i = combo.count() - 1
        combo.setCurrentIndex(i)

    def set_param(self, key: str, value):
        w = self.fields[key]
        if isinstance(w, QComboBox):
            self.select(w, key, value)
        elif isinstance(w, QDoubleSpinBox):
            _set_exact(w, value)
        else:
            w.setValue(value)

    def values(self) -> dict:
        return {k: _field_value(w) for k, w in self.fields.items()}
