"""What the app needs around the core's observation operators (numpy, no Qt).

The core (``sda_gui.core.operators``) defines the operators and their grammar: stages
joined by ``+`` (``coarsen:4``, ``subsample:2``, ``vorticity``, ``saturate``,
``plugin:NAME``, ``vorticity+saturate``). Here lives the editor's side of them: which
operators a state grid offers (``offered_operators``), the observed grid's shape with
one clear message when an operator does not fit, moving a pattern from one operator's
grid to another's, and where an observed cell sits on the state grid (for plots).
Spatial axes are the last one of a 1-D state and the last two of a field.

Each stage maps a mask on its output grid back to the state entries it reads (its
*footprint*) and forward again: block means repeat over their block, subsamples sit on
every n-th point, vorticity reads both velocity components at its grid point (the
spectral derivative is global, but its weight is local), ``saturate`` acts entry by
entry; a plugin that keeps the grid is read entry by entry, one that changes it keeps
only the time structure (a state observed or not). A chain composes its stages.

Direct observation (the identity) is answered here without the engine, so the editor
works while torch still loads; any other operator asks the core.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from . import engine

__all__ = ["KINDS", "normalize", "factor_of", "kind_of", "operator_factors", "offers_operators",
           "offered_operators", "observed_shape", "apply", "convert_mask", "positions", "describe", "cell_extent",
           "ordinal", "stages", "is_geometric", "observed_names", "observed_title"]

#: labels of the operators the editor offers: a kind taking a factor, or a whole spec
KINDS = {"identity": "direct (every grid point)", "coarsen": "coarsen: block means",
         "subsample": "subsample: every n-th point", "vorticity": "vorticity ω = ∂v/∂x − ∂u/∂y",
         "saturate": "saturate: w / (1 + |w|)", "vorticity+saturate": "saturated vorticity"}

#: kinds whose stage takes a block size or step (the editor's factor choice)
FACTOR_KINDS = ("coarsen", "subsample")


def _spatial(state_shape) -> tuple:
    return tuple(state_shape[-2:]) if len(state_shape) >= 2 else tuple(state_shape[-1:])


#: what the core reads as the identity (``core.observation.parse_operator``)
IDENTITY_SPECS = ("", "identity", "none")


def _is_identity(spec: Optional[str]) -> bool:
    return spec is None or str(spec).strip().lower() in IDENTITY_SPECS


def parse_operator(spec: Optional[str]):
    """The core's operator for ``spec`` (loads the engine if needed)."""
    engine.ENGINE.wait()
    from sda_gui.core.observation import parse_operator as parse

    return parse(spec)


def normalize(spec: Optional[str]) -> Optional[str]:
    """The canonical spec (``"coarsen:8"``, ``"vorticity+saturate"``), None for the identity.

    Every spec the core's grammar reads is accepted (plugin operators once their file is
    loaded); a malformed one raises the core's ObservationError in one line. Whether it
    fits the state grid is ``observed_shape``'s to say.
    """
    if _is_identity(spec):
        return None
    return parse_operator(spec).spec or None


def stages(spec: Optional[str]) -> list[tuple[str, str]]:
    """``[(kind, argument), …]`` of a canonical spec, in the order they apply (empty: identity)."""
    if _is_identity(spec):
        return []
    out = []
    for part in str(spec).split("+"):
        kind, _, arg = part.strip().partition(":")
        kind = kind.strip().lower()
        if kind not in IDENTITY_SPECS:
            out.append((kind, arg.strip()))
    return out


def is_geometric(spec: Optional[str]) -> bool:
    """Whether ``spec`` is one block mean or subsample (``"coarsen:4"``): the editor's factor choice."""
    st = stages(spec)
    return len(st) == 1 and st[0][0] in FACTOR_KINDS and st[0][1].isdigit()


def kind_of(spec: Optional[str]) -> str:
    """What the observed grid is: ``identity``, ``coarsen``/``subsample`` when a stage changes the grid
    that way (any other stages act on its cells), else the first stage (``vorticity``, ``plugin``)."""
    st = stages(spec)
    if not st:
        return "identity"
    return next((k for k, _ in st if k in FACTOR_KINDS), st[0][0])


def factor_of(spec: Optional[str]) -> int:
    """The block size or step of the observed grid along each spatial axis (1: the state's grid)."""
    f = 1
    for kind, arg in stages(spec):
        if kind in FACTOR_KINDS and arg.isdigit():
            f *= int(arg)
    return f


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


def _plugin_names() -> list[str]:
    if not engine.ENGINE.ready():
        return []             # plugins come with the core; none can be loaded before it
    from sda_gui.core.operators import plugin_operator_names

    return plugin_operator_names()


def offered_operators(state_shape) -> list[tuple[str, str]]:
    """``(key, label)`` of every operator that observes states of ``state_shape``.

    ``key`` is ``identity``, a kind taking a factor (``coarsen``, ``subsample``: offered
    where some factor fits) or a whole spec: ``saturate`` (any state),
    ``vorticity`` and ``vorticity+saturate`` (a velocity field ``(2, H, W)``) and
    ``plugin:NAME`` for each loaded plugin operator whose output fits the state.
    """
    shape = tuple(state_shape)
    out = [("identity", KINDS["identity"])]
    if operator_factors(shape):
        out += [(k, KINDS[k]) for k in FACTOR_KINDS]
    if len(shape) == 3 and shape[0] == 2:
        out += [(k, KINDS[k]) for k in ("vorticity", "vorticity+saturate")]
    out.append(("saturate", KINDS["saturate"]))
    for name in _plugin_names():
        spec = f"plugin:{name}"
        try:
            observed_shape(shape, spec)
        except Exception:  # noqa: BLE001 - the user's operator does not take this state: not offered
            continue
        out.append((spec, f"plugin: {name}"))
    return out


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


def _stage_shape(kind: str, arg: str, shape: tuple) -> tuple:
    """The output grid of one stage on input grid ``shape`` (the core answers for plugins)."""
    d = len(_spatial(shape))
    if kind == "coarsen":
        return shape[:-d] + tuple(n // int(arg) for n in shape[-d:])
    if kind == "subsample":
        return shape[:-d] + tuple(math.ceil(n / int(arg)) for n in shape[-d:])
    if kind == "vorticity":
        return (1, *shape[1:])
    if kind == "saturate":
        return shape
    return observed_shape(shape, f"{kind}:{arg}" if arg else kind)


def _stage_back(kind: str, arg: str, mask: np.ndarray, shape: tuple) -> np.ndarray:
    """The entries of input grid ``shape`` that an output-grid mask ``(L, *out)`` of one stage reads."""
    d = len(_spatial(shape))
    if kind == "coarsen":
        out = mask
        for axis in range(mask.ndim - d, mask.ndim):
            out = np.repeat(out, int(arg), axis=axis)
        return out
    if kind == "subsample":
        out = np.zeros((mask.shape[0], *shape), dtype=bool)
        out[(Ellipsis,) + (slice(None, None, int(arg)),) * d] = mask
        return out
    if kind == "vorticity":
        return np.repeat(mask, shape[0], axis=1)       # ω at a point reads u and v there
    if tuple(mask.shape[1:]) == tuple(shape):
        return mask.copy()                             # entry by entry (saturate, a grid-keeping plugin)
    timed = mask.reshape(mask.shape[0], -1).any(axis=1)
    return np.broadcast_to(timed.reshape(-1, *([1] * len(shape))), (mask.shape[0], *shape)).copy()


def _stage_forward(kind: str, arg: str, fp: np.ndarray, shape: tuple) -> np.ndarray:
    """Inverse of ``_stage_back``: an output cell is observed where any entry it reads was."""
    d = len(_spatial(shape))
    if kind == "coarsen":
        f = int(arg)
        head = fp.shape[:-d]
        blocks = []
        for n in fp.shape[-d:]:
            blocks += [n // f, f]
        return fp.reshape(*head, *blocks).any(axis=tuple(len(head) + 1 + 2 * i for i in range(d)))
    if kind == "subsample":
        return fp[(Ellipsis,) + (slice(None, None, int(arg)),) * d].copy()
    if kind == "vorticity":
        return fp.any(axis=1, keepdims=True)
    out_shape = _stage_shape(kind, arg, shape)
    if tuple(out_shape) == tuple(shape):
        return fp.copy()
    timed = fp.reshape(fp.shape[0], -1).any(axis=1)
    return np.broadcast_to(timed.reshape(-1, *([1] * len(out_shape))), (fp.shape[0], *out_shape)).copy()


def _grids(spec: Optional[str], state_shape) -> list[tuple]:
    """The input grid of each stage of ``spec``, starting from the state's."""
    shapes = [tuple(state_shape)]
    for kind, arg in stages(spec)[:-1]:
        shapes.append(tuple(_stage_shape(kind, arg, shapes[-1])))
    return shapes


def _footprint(mask: np.ndarray, spec: Optional[str], state_shape) -> np.ndarray:
    """The state-grid entries an observed-grid mask ``(L, *out)`` reads: ``(L, *state_shape)``."""
    st = stages(spec)
    out = mask
    for (kind, arg), shape in reversed(list(zip(st, _grids(spec, state_shape)))):
        out = _stage_back(kind, arg, out, shape)
    return out


def _from_footprint(fp: np.ndarray, spec: Optional[str], state_shape) -> np.ndarray:
    """Inverse of ``_footprint``, stage by stage."""
    out = fp.copy()
    for (kind, arg), shape in zip(stages(spec), _grids(spec, state_shape)):
        out = _stage_forward(kind, arg, out, shape)
    return out


def convert_mask(mask: np.ndarray, src: Optional[str], dst: Optional[str], state_shape) -> np.ndarray:
    """A pattern on ``src``'s grid moved to ``dst``'s, through the state entries it covers.

    Finer → coarser keeps every coarse cell that covers something observed (the time
    structure, e.g. every 4th state, survives); coarser → finer observes every entry of
    an observed cell. Undo in the editor gets the exact earlier pattern back.
    """
    return _from_footprint(_footprint(np.asarray(mask, dtype=bool), src, state_shape), dst, state_shape)


def positions(spec: Optional[str], n_out: int) -> np.ndarray:
    """Coordinate on the state grid of each output index: block centres, or sampled points."""
    p = np.arange(n_out, dtype=np.float32)
    for kind, arg in reversed(stages(spec)):
        if kind == "coarsen":
            p = p * int(arg) + (int(arg) - 1) / 2
        elif kind == "subsample":
            p = p * int(arg)
    return p


def cell_extent(spec: Optional[str], index: int) -> tuple[int, int]:
    """The state indices ``[lo, hi]`` an output index reads along one axis."""
    lo = hi = int(index)
    for kind, arg in reversed(stages(spec)):
        if kind == "coarsen":
            lo, hi = lo * int(arg), hi * int(arg) + int(arg) - 1
        elif kind == "subsample":
            lo, hi = lo * int(arg), hi * int(arg)
    return lo, hi


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _describe_stage(kind: str, arg: str, field: bool) -> str:
    unit = "pixels" if field else "variables"
    if kind == "coarsen":
        return f"block means over {arg}×{arg} {unit}" if field else f"block means over {arg} {unit}"
    if kind == "subsample":
        return f"every {ordinal(int(arg))} grid point along x and y" if field else f"every {ordinal(int(arg))} variable"
    if kind == "vorticity":
        return "the vorticity ω = ∂v/∂x − ∂u/∂y at a grid point"
    if kind == "saturate":
        return "saturated, w / (1 + |w|)"
    return f"the plugin operator {arg or kind}"


def describe(spec: Optional[str], field: bool) -> str:
    """What one observed value is, in words (a chain: its stages in the order they apply)."""
    st = stages(spec)
    if not st:
        return "the state's grid points" if field else "the variables"
    words = [_describe_stage(kind, arg, field) for kind, arg in st]
    if st[0][0] == "saturate":
        words[0] = f"{'a grid point' if field else 'a variable'} {words[0]}"
    return ", then ".join(words)


def observed_names(state_shape, spec: Optional[str], names: list) -> list[str]:
    """Names of the observed grid's components (its first axis for a field): the state's
    variables where the operator keeps them, ``ω`` for a vorticity, ``A₀, A₁…`` otherwise."""
    grid = observed_shape(state_shape, spec)
    names = [str(n) for n in names]
    if len(state_shape) < 2 or (len(grid) == len(state_shape) and grid[0] == state_shape[0]):
        return names
    kinds = [k for k, _ in stages(spec)]
    if "vorticity" in kinds and grid[0] == 1:
        return ["s(ω)" if kinds[-1] == "saturate" and kinds.index("vorticity") < len(kinds) - 1 else "ω"]
    return [f"A{i}" for i in range(grid[0])]


def observed_title(spec: Optional[str]) -> str:
    """What the editor's image shows of the truth through ``spec``, in a few words."""
    kind, f = kind_of(spec), factor_of(spec)
    kinds = [k for k, _ in stages(spec)]
    extra = " (saturated)" if "saturate" in kinds else ""
    if kind == "coarsen":
        return f"block means ×{f} of the truth{extra}"
    if kind == "subsample":
        return f"truth at every {ordinal(f)} point{extra}"
    if kind == "vorticity":
        return f"vorticity of the truth{extra}"
    if kind == "saturate":
        return "saturated truth w / (1 + |w|)"
    if kind == "plugin":
        return f"{spec} of the truth"
    return "truth"
