"""Observation operators beyond masks: vorticity, saturation, chains and plugin operators.

Grammar of an operator spec (``Observation.operator``, ``--operator``, the app's
"Observe through"): stages joined by ``+``, applied left to right::

    spec   := stage ("+" stage)*
    stage  := identity | coarsen:N | subsample:N | vorticity | saturate | plugin:NAME

so ``vorticity+saturate`` observes ``s(ω(x))``. Stages:

- ``vorticity``: ``ω = ∂v/∂x − ∂u/∂y`` of a velocity field ``(2, H, W)`` → ``(1, H, W)``,
  spectral (exact for band-limited fields) on the periodic square ``[0, 2π]²`` with the
  Kolmogorov flow's axes (axis −2 is ``x``, −1 is ``y``). Linear.
- ``saturate``: ``s(w) = w / (1 + |w|)`` elementwise, the paper's saturating observation;
  ``s'(w) = 1 / (1 + |w|)²``. Nonlinear.
- ``plugin:NAME``: an ``Operator`` subclass with ``name = "NAME"`` defined in a plugin
  file (``systems.plugins.load_system_file``); differentiable torch code.

Gain. The guidance needs ``diag(J D Jᵀ)``: how a diagonal variance ``D`` of the state
(``scale²`` for the network's unit variance) shows in each observed value. Each stage
maps the variance of its input to that of its output, ``g_out = stage.gain(g_in, x_in)``,
and a chain folds the stages (keeping only the diagonal between stages, as coarsening
already does). Linear stages ignore ``x``: vorticity's is exact, the squared spectral
derivative kernels convolved with ``g`` (``Σ_j J_ij² g_j``). A nonlinear stage is
*linearised at the current estimate* ``x̂``: ``saturate`` multiplies by ``s'(w)²``. A
plugin operator without its own ``gain`` gets a Hutchinson estimate
``E_z[(J (√g ⊙ z))²]`` with fixed Rademacher probes ``z`` (exact in expectation; a few
forward-mode products of the operator, never of the network).
"""

from __future__ import annotations

from typing import Optional

import torch

from .observation import Coarsen, Identity, ObservationError, Operator, Subsample

__all__ = ["Vorticity", "Saturate", "Chain", "register_operator", "operator_classes", "plugin_operator_names",
           "build_operator", "hutchinson_gain", "OPERATOR_GRAMMAR", "PLUGIN_OPERATORS"]

OPERATOR_GRAMMAR = ("stages joined by '+', applied left to right: identity, coarsen:N, subsample:N, vorticity, "
                    "saturate, plugin:NAME (e.g. vorticity+saturate)")

#: plugin operator name → (class, source)
PLUGIN_OPERATORS: dict[str, tuple] = {}
_PROBES = 8


def hutchinson_gain(op: Operator, g: torch.Tensor, state_ndim: int, x: Optional[torch.Tensor] = None,
                    probes: int = _PROBES) -> torch.Tensor:
    """``diag(J D Jᵀ)`` of ``op`` at ``x`` (zero when None) for ``D = g``, estimated with ``probes``
    fixed Rademacher vectors: each gives ``(J (√g ⊙ z))²``, whose mean is exact in expectation."""
    g = g.detach().contiguous()
    # forward-mode AD writes into the primal: it must own its memory (not an expanded view)
    point = torch.zeros_like(g) if x is None else x.detach().to(g).clone(memory_format=torch.contiguous_format)
    gen = torch.Generator().manual_seed(0)
    total = None
    for _ in range(int(probes)):
        z = (torch.randint(0, 2, tuple(point.shape), generator=gen) * 2 - 1).to(point)
        _, jv = torch.func.jvp(lambda v: op(v, state_ndim), (point,), (g.sqrt() * z,))
        total = jv.square() if total is None else total + jv.square()
    return total / int(probes)


class Vorticity(Operator):
    """``(…, 2, H, W)`` velocity ``(u, v)`` → ``(…, 1, H, W)`` vorticity ``∂v/∂x − ∂u/∂y`` (spectral)."""

    spec = "vorticity"

    def output_shape(self, state_shape):
        if len(state_shape) != 3 or state_shape[0] != 2:
            raise ObservationError(f"vorticity observes a 2-D velocity field (2, H, W), not states of shape "
                                   f"{tuple(state_shape)}")
        return (1, *state_shape[1:])

    def __call__(self, x, state_ndim):
        from .systems.kolmogorov import vorticity

        return vorticity(x).unsqueeze(-3)

    @staticmethod
    def _kernels_squared(h: int, w: int, like: torch.Tensor) -> tuple:
        """``(∂x δ)²`` and ``(∂y δ)²`` on the grid: the squared rows of the two derivative operators
        (circulant, so every row is a shift of the impulse response)."""
        from .systems.kolmogorov import vorticity

        delta = torch.zeros((2, 2, h, w), dtype=like.dtype, device=like.device)
        delta[0, 1, 0, 0] = 1.0        # a v impulse: ω = ∂v/∂x
        delta[1, 0, 0, 0] = 1.0        # a u impulse: ω = −∂u/∂y
        response = vorticity(delta)
        return response[0].square(), response[1].square()

    def gain(self, scale2, state_ndim, x=None):
        h, w = scale2.shape[-2:]
        kx2, ky2 = self._kernels_squared(h, w, scale2)
        # Σ_j J_ij² g_j: circular correlation of each channel's variance with its squared kernel
        fx, fy = torch.fft.rfft2(kx2).conj(), torch.fft.rfft2(ky2).conj()
        gv = torch.fft.irfft2(torch.fft.rfft2(scale2[..., 1, :, :]) * fx, s=(h, w))
        gu = torch.fft.irfft2(torch.fft.rfft2(scale2[..., 0, :, :]) * fy, s=(h, w))
        return (gv + gu).clamp_min(0).unsqueeze(-3)


class Saturate(Operator):
    """``w / (1 + |w|)`` elementwise (any shape); linearised at the estimate for the gain."""

    spec = "saturate"
    linear = False

    def __call__(self, x, state_ndim):
        return x / (1 + x.abs())

    def gain(self, scale2, state_ndim, x=None):
        if x is None:
            return scale2               # the slope at 0 is 1: the largest it gets (conservative)
        return scale2 * (1 + x.detach().abs()).pow(-4)


class Chain(Operator):
    """Stages applied left to right; shapes, linearity and gains folded through them."""

    def __init__(self, stages: list):
        self.stages = list(stages)
        self.spec = "+".join(s.spec for s in self.stages)
        self.linear = all(getattr(s, "linear", True) for s in self.stages)
        self.graph_safe = all(getattr(s, "graph_safe", True) for s in self.stages)

    def output_shape(self, state_shape):
        shape = tuple(state_shape)
        for stage in self.stages:
            shape = tuple(stage.output_shape(shape))
        return shape

    def __call__(self, x, state_ndim):
        for stage in self.stages:
            x = stage(x, state_ndim)
        return x

    def gain(self, scale2, state_ndim, x=None):
        g = scale2
        for stage in self.stages:
            g = stage.gain(g, state_ndim, x)
            x = None if x is None else stage(x, state_ndim)
        return g


# --- plugin operators ---------------------------------------------------------------------------
def operator_classes(module, where: str) -> list:
    """The ``Operator`` subclasses with a ``name`` that a plugin module defines."""
    import inspect

    found = []
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if not issubclass(cls, Operator) or cls.__module__ != module.__name__:
            continue
        name = cls.__dict__.get("name")
        if not name:
            continue
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ObservationError(f"{where}: operator class {cls.__name__} needs name = \"…\" (letters, digits, "
                                   f"_ -), got {name!r}")
        found.append(cls)
    return found


def register_operator(cls, source: Optional[dict] = None) -> type:
    """Makes ``plugin:<cls.name>`` available (``cls()`` is built for each observation)."""
    PLUGIN_OPERATORS[cls.name] = (cls, dict(source or {"kind": "script", "module": cls.__module__}))
    return cls


def plugin_operator_names() -> list[str]:
    return sorted(PLUGIN_OPERATORS)


class _Plugin(Operator):
    """A plugin operator under its ``plugin:NAME`` spec, its gain estimated unless it has its own."""

    def __init__(self, name: str, inner: Operator):
        self.inner, self.spec = inner, f"plugin:{name}"
        self.linear = bool(getattr(inner, "linear", False))
        self.graph_safe = False           # the estimate draws probes on the host
        self._own_gain = type(inner).gain is not Operator.gain

    def output_shape(self, state_shape):
        shape = self.inner.output_shape(tuple(state_shape))
        return tuple(shape)

    def __call__(self, x, state_ndim):
        return self.inner(x, state_ndim)

    def gain(self, scale2, state_ndim, x=None):
        if self._own_gain:
            return self.inner.gain(scale2, state_ndim, x)
        return hutchinson_gain(self.inner, scale2, state_ndim, None if self.linear else x)


def _stage(text: str, full: str) -> Operator:
    name, sep, arg = text.partition(":")
    name = name.strip().lower()
    if name in ("identity", "none") and not sep:
        return Identity()
    if name in ("vorticity", "saturate"):
        if sep:
            raise ObservationError(f"operator '{full}': {name} takes no argument")
        return Vorticity() if name == "vorticity" else Saturate()
    if name == "plugin":
        key = arg.strip()
        if key not in PLUGIN_OPERATORS:
            known = ", ".join(plugin_operator_names()) or "none loaded"
            raise ObservationError(f"operator plugin:{key} is not loaded (loaded: {known}); pass the file that "
                                   f"defines it with --operator-file PATH.py")
        cls, _ = PLUGIN_OPERATORS[key]
        try:
            inner = cls()
        except Exception as exc:  # the user's constructor
            raise ObservationError(f"operator plugin:{key} cannot be built: {type(exc).__name__}: {exc}") from None
        return _Plugin(key, inner)
    if name in ("coarsen", "subsample"):
        try:
            n = int(arg)
        except ValueError:
            raise ObservationError(f"operator '{full}': {name} needs an integer argument, e.g. {name}:4") from None
        return Coarsen(n) if name == "coarsen" else Subsample(n)
    raise ObservationError(f"unknown observation operator '{text}' in '{full}' ({OPERATOR_GRAMMAR})")


def build_operator(spec: str) -> Operator:
    """The operator of a non-empty spec (see the module docstring); ObservationError when malformed."""
    parts = [p.strip() for p in str(spec).split("+")]
    if any(not p for p in parts):
        raise ObservationError(f"operator '{spec}' has an empty stage ({OPERATOR_GRAMMAR})")
    stages = [s for s in (_stage(p, spec) for p in parts) if not isinstance(s, Identity)]
    if not stages:
        return Identity()
    return stages[0] if len(stages) == 1 else Chain(stages)

