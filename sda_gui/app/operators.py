"""What the app needs around the core's observation operators (numpy, no Qt).

The core (``sda_gui.core.observation``) defines the operators; here live the
editor's side of them: which operators a state grid offers, the observed grid's
shape with one clear message when an operator does not fit, moving a pattern from
one operator's grid to another's, and where an observed cell sits on the state grid
(for plots). Spatial axes are the last one of a 1-D state and the last two of a field.

Direct observation (the identity) is answered here without the engine, so the editor
works while torch still loads; any other operator asks the core.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import engine

__all__ = ["KINDS", "normalize", "factor_of", "kind_of", "operator_factors", "offers_operators",
           "observed_shape", "apply", "convert_mask", "positions", "describe", "cell_extent", "ordinal"]

#: operator kinds offered by the editor: spec prefix → label
KINDS = {"identity": "direct (every grid point)", "coarsen": "coarsen: block means",
         "subsample": "subsample: every n-th point"}


def _spatial(state_shape) -> tuple:
    return tuple(state_shape[-2:]) if len(state_shape) >= 2 else tuple(state_shape[-1:])


#: what the core reads as the identity (``core.observation.parse_operator``)
IDENTITY_SPECS = ("", "identity", "none")


def _is_identity(spec: Optional[str]) -> bool:
    return spec is None or str(spec).strip() in IDENTITY_SPECS


def parse_operator(spec: Optional[str]):
    """The core's operator for ``spec`` (loads the engine if needed)."""
    engine.ENGINE.wait()
    from sda_gui.core.observation import parse_operator as parse

    return parse(spec)


#: operators the editor paints on (a block or point grid); the core knows more (vorticity, …)
EDITOR_KINDS = ("coarsen", "subsample")


def normalize(spec: Optional[str]) -> Optional[str]:
    """The canonical spec (``"coarsen:8"``), or None for the identity; raises on a bad spec.

    A valid spec the editor cannot paint on (``vorticity``, ``saturate``, a chain, a
    plugin) is refused in one line: such observations are assimilated from the command
    line or a script.
    """
    if _is_identity(spec):
        return None
    canonical = parse_operator(spec).spec
    kind, _, arg = str(canonical).partition(":")
    if kind not in EDITOR_KINDS or not arg.isdigit():
        from sda_gui.core.observation import ObservationError

        raise ObservationError(f"the observation editor paints masks, block means and subsamples; "
                               f"observations through '{canonical}' are assimilated with "
                               f"'python -m sda_gui assimilate' or the script API")
    return canonical


def kind_of(spec: Optional[str]) -> str:
    return "identity" if not spec else spec.split(":")[0]


def factor_of(spec: Optional[str]) -> int:
    return 1 if not spec else int(spec.split(":")[1])


def offers_operators(state_shape) -> bool:
    """Whether the state is a grid worth coarsening: a ring of many variables or a field.

    A handful of unrelated variables (Lorenz-63) has no neighbours to average.
    """
    return len(state_shape) >= 2 or state_shape[0] > 4


def operator_factors(state_shape) -> list[int]:
    """Factors n ≥ 2 that divide every spatial axis and leave at least 4 cells along it."""
    if not offers_operators(state_shape):
        return []
    n = min(_spatial(state_shape))
    return [f for f in range(2, n // 4 + 1) if all(m % f == 0 for m in _spatial(state_shape))]


def observed_shape(state_shape, spec: Optional[str]) -> tuple:
    """``op.output_shape(state_shape)``: one line (an ObservationError) when a block size
    does not divide the grid. Subsampling takes ``ceil(n / s)`` points, so any step fits."""
    if _is_identity(spec):
        return tuple(state_shape)
    return tuple(parse_operator(spec).output_shape(tuple(state_shape)))


def apply(x: np.ndarray, spec: Optional[str], state_ndim: int) -> np.ndarray:
    """``op(x)`` for arrays ``(..., *state_shape)``, float32 (what is observed, before noise)."""
    if _is_identity(spec):
        return np.asarray(x, dtype=np.float32)
    op = parse_operator(spec)
    import torch

    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return op(t, state_ndim).numpy()


def _footprint(mask: np.ndarray, spec: Optional[str], state_shape) -> np.ndarray:
    """The state-grid entries an observed-grid mask ``(L, *out)`` reads: ``(L, *state_shape)``."""
    d = len(_spatial(state_shape))
    f = factor_of(spec)
    if kind_of(spec) == "coarsen":
        out = mask
        for axis in range(mask.ndim - d, mask.ndim):
            out = np.repeat(out, f, axis=axis)
        return out
    if kind_of(spec) == "subsample":
        out = np.zeros((mask.shape[0], *state_shape), dtype=bool)
        out[(Ellipsis,) + (slice(None, None, f),) * d] = mask
        return out
    return mask


def _from_footprint(fp: np.ndarray, spec: Optional[str], state_shape) -> np.ndarray:
    """Inverse of ``_footprint``: a coarse cell is observed where any entry it reads was."""
    d = len(_spatial(state_shape))
    f = factor_of(spec)
    if kind_of(spec) == "coarsen":
        head = fp.shape[:-d]
        blocks = []
        for n in fp.shape[-d:]:
            blocks += [n // f, f]
        return fp.reshape(*head, *blocks).any(axis=tuple(len(head) + 1 + 2 * i for i in range(d)))
    if kind_of(spec) == "subsample":
        return fp[(Ellipsis,) + (slice(None, None, f),) * d].copy()
    return fp.copy()


def convert_mask(mask: np.ndarray, src: Optional[str], dst: Optional[str], state_shape) -> np.ndarray:
    """A pattern on ``src``'s grid moved to ``dst``'s, through the state entries it covers.

    Finer → coarser keeps every coarse cell that covers something observed (the time
    structure, e.g. every 4th state, survives); coarser → finer observes every entry of
    an observed cell. Undo in the editor gets the exact earlier pattern back.
    """
    return _from_footprint(_footprint(np.asarray(mask, dtype=bool), src, state_shape), dst, state_shape)


def positions(spec: Optional[str], n_out: int) -> np.ndarray:
    """Coordinate on the state grid of each output index: block centres, or sampled points."""
    i = np.arange(n_out, dtype=np.float32)
    f = factor_of(spec)
    if kind_of(spec) == "coarsen":
        return i * f + (f - 1) / 2
    return i * f


def cell_extent(spec: Optional[str], index: int) -> tuple[int, int]:
    """The state indices ``[lo, hi]`` an output index reads along one axis."""
    f = factor_of(spec)
    if kind_of(spec) == "coarsen":
        return index * f, index * f + f - 1
    return index * f, index * f


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(spec: Optional[str], field: bool) -> str:
    """What one observed value is, in words."""
    unit = "pixels" if field else "variables"
    f = factor_of(spec)
    if kind_of(spec) == "coarsen":
        return f"block means over {f}×{f} {unit}" if field else f"block means over {f} {unit}"
    if kind_of(spec) == "subsample":
        return f"every {ordinal(f)} grid point along x and y" if field else f"every {ordinal(f)} variable"
    return "the state's grid points" if field else "the variables"
