"""Observations: operators, synthetic observations, files and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core.observation import (Coarsen, Identity, Observation, ObservationError, Subsample,
                                      every_nth_state_mask, parse_operator, synthesize)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    """``torch.testing.assert_close`` costs seconds on its first call; numpy's does not."""
    np.testing.assert_allclose(torch.as_tensor(actual).detach().numpy(), torch.as_tensor(expected).detach().numpy(),
                               rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------
# operators
# ------------------------------------------------------------------------------------------


def test_parse_operator():
    for spec in (None, "", "identity", "none", "  "):
        assert isinstance(parse_operator(spec), Identity)
    c = parse_operator("coarsen:8")
    assert isinstance(c, Coarsen) and c.factor == 8 and c.spec == "coarsen:8"
    s = parse_operator(" subsample:4 ")
    assert isinstance(s, Subsample) and s.step == 4 and s.spec == "subsample:4"


@pytest.mark.parametrize("spec,match", [
    ("blur:3", "unknown observation operator"),
    ("coarsen", "integer argument"),
    ("coarsen:x", "integer argument"),
    ("coarsen:0", "≥ 1"),
    ("subsample:-2", "≥ 1"),
])
def test_parse_operator_rejects_bad_specs(spec, match):
    with pytest.raises(ObservationError, match=match):
        parse_operator(spec)


@pytest.mark.parametrize("op,state,out", [
    (Identity(), (40,), (40,)),
    (Coarsen(4), (40,), (10,)),
    (Coarsen(4), (2, 64, 64), (2, 16, 16)),
    (Subsample(4), (40,), (10,)),
    (Subsample(3), (40,), (14,)),
    (Subsample(4), (2, 64, 64), (2, 16, 16)),
    (Subsample(3), (2, 8, 10), (2, 3, 4)),
])
def test_operator_output_shapes_match_their_outputs(op, state, out):
    assert op.output_shape(state) == out
    x = torch.randn(5, 7, *state)                               # (N, L, *state)
    assert tuple(op(x, len(state)).shape) == (5, 7, *out)
    assert tuple(op(x[0], len(state)).shape) == (7, *out)      # (L, *state)


def test_coarsen_rejects_a_grid_it_does_not_divide():
    with pytest.raises(ObservationError, match="does not divide"):
        Coarsen(3).output_shape((2, 64, 64))


def test_coarsen_and_subsample_values():
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6)      # (L, C, H, W)
    got = Coarsen(2)(torch.as_tensor(x), 3).numpy()
    np.testing.assert_allclose(got, x.reshape(2, 3, 2, 2, 3, 2).mean((3, 5)))
    np.testing.assert_array_equal(Subsample(2)(torch.as_tensor(x), 3).numpy(), x[..., ::2, ::2])
    ring = np.arange(3 * 12, dtype=np.float64).reshape(3, 12)                # (L, N)
    np.testing.assert_allclose(Coarsen(3)(torch.as_tensor(ring), 1).numpy(), ring.reshape(3, 4, 3).mean(-1))
    np.testing.assert_array_equal(Subsample(5)(torch.as_tensor(ring), 1).numpy(), ring[:, ::5])


def test_apply_selects_the_masked_outputs():
    mask = np.zeros((4, 3), dtype=bool)
    mask[0, 0] = mask[2, 1] = mask[3, 2] = True
    obs = Observation(mask, np.zeros((4, 3)), 1.0)
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    _close(obs.apply(x, 1), x[:, torch.as_tensor(mask)])
    assert obs.apply(x, 1).shape == (2, 3)
    coarse = Observation(np.ones((4, 2, 2, 2), dtype=bool), np.zeros((4, 2, 2, 2)), 1.0, operator="coarsen:4")
    assert coarse.apply(torch.randn(3, 4, 2, 8, 8), 3).shape == (3, 4 * 8)


def test_every_nth_state_mask():
    m = every_nth_state_mask(9, (3,), every=4, variables=[0])
    assert m.shape == (9, 3)
    assert np.flatnonzero(m[:, 0]).tolist() == [0, 4, 8]
    assert not m[:, 1:].any()
    assert every_nth_state_mask(5, (2, 4, 4)).all()


# ------------------------------------------------------------------------------------------
# synthetic observations
# ------------------------------------------------------------------------------------------


def test_synthesize_is_reproducible_and_has_the_right_noise():
    truth = np.random.default_rng(0).normal(size=(400, 5))
    mask = np.zeros((400, 5), dtype=bool)
    mask[:, [0, 3]] = True
    a = synthesize(truth, mask, 0.3, seed=7)
    b = synthesize(truth, mask, 0.3, seed=7)
    c = synthesize(truth, mask, 0.3, seed=8)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values[mask], c.values[mask])
    noise = a.values[mask] - truth[mask]
    assert abs(noise.std() - 0.3) < 0.3 * 0.08                   # 800 draws: ~2.5 % sampling error
    assert abs(noise.mean()) < 4 * 0.3 / np.sqrt(800)
    assert a.operator is None and a.std == 0.3 and a.count == 800
    a.validate((5,))


def test_synthesize_per_entry_std_and_operator():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(50, 1, 8, 8))
    mask = np.ones((50, 1, 2, 2), dtype=bool)
    std = np.full((50, 1, 2, 2), 0.1)
    std[:, :, 0] = 1.0
    obs = synthesize(truth, mask, std, seed=0, operator="coarsen:4")
    assert obs.operator == "coarsen:4"
    clean = truth.reshape(50, 1, 2, 4, 2, 4).mean((3, 5))
    noise = obs.values - clean
    assert abs(noise[:, :, 0].std() - 1.0) < 0.15 and abs(noise[:, :, 1].std() - 0.1) < 0.015
    obs.validate((1, 8, 8))
    with pytest.raises(ObservationError, match="pattern shape"):
        synthesize(truth, np.ones((50, 1, 8, 8), dtype=bool), 0.1, operator="coarsen:4")


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------


def _obs(operator=None, per_entry=False):
    rng = np.random.default_rng(0)
    shape = (6, 2, 4, 4) if operator else (6, 3)
    mask = rng.random(shape) < 0.5
    values = np.where(mask, rng.normal(size=shape), np.nan)
    std = rng.uniform(0.1, 1.0, size=shape) if per_entry else 0.25
    return Observation(mask, values, std, operator=operator)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize("operator,per_entry", [(None, False), ("coarsen:4", True), ("subsample:2", False)])
def test_save_load_round_trip(tmp_path, suffix, operator, per_entry):
    obs = _obs(operator, per_entry)
    path = tmp_path / f"obs{suffix}"
    obs.save(path)
    back = Observation.load(path)
    assert back.operator == operator
    np.testing.assert_array_equal(back.mask, obs.mask)
    assert back.mask.dtype == bool
    np.testing.assert_allclose(back.observed_values(), obs.observed_values(), rtol=1e-6)
    np.testing.assert_allclose(back.std_array(), obs.std_array(), rtol=1e-6)
    assert np.ndim(back.std) == np.ndim(obs.std)


def test_load_accepts_integer_masks_and_hand_written_files(tmp_path):
    path = tmp_path / "hand.npz"
    np.savez(path, mask=np.array([[1, 0, 0], [0, 1, 0]], dtype=np.int64), values=np.ones((2, 3)), std=0.5,
             operator="identity")
    obs = Observation.load(path)
    assert obs.mask.dtype == bool and obs.count == 2 and obs.operator is None
    obs.validate((3,))

    import h5py

    path = tmp_path / "hand.h5"                    # the operator as a dataset rather than an attribute
    with h5py.File(path, "w") as f:
        f.create_dataset("mask", data=np.ones((2, 1, 4, 4), dtype=bool))
        f.create_dataset("values", data=np.zeros((2, 1, 4, 4)))
        f.create_dataset("std", data=0.1)
        f.create_dataset("operator", data="coarsen:2")
    obs = Observation.load(path)
    assert obs.operator == "coarsen:2"
    obs.validate((1, 8, 8))


# ------------------------------------------------------------------------------------------
# bad input: one clear ObservationError each
# ------------------------------------------------------------------------------------------


def _good():
    mask = np.zeros((8, 3), dtype=bool)
    mask[::2, 0] = True
    return mask, np.where(mask, 1.0, np.nan), 0.5


def test_nan_where_unobserved_is_fine():
    mask, values, std = _good()
    per_entry = np.where(mask, 0.5, np.nan)
    Observation(mask, values, per_entry).validate((3,), length=8)


@pytest.mark.parametrize("case,match", [
    ("mask-shape", "does not fit states of shape"),
    ("values-shape", "values shape"),
    ("1-d-mask", "mask must have shape"),
    ("nan-observed", "NaN or infinity"),
    ("inf-observed", "NaN or infinity"),
    ("std-zero", "std must be finite and > 0"),
    ("std-negative", "std must be finite and > 0"),
    ("std-entry-zero", "std must be finite and > 0"),
    ("std-shape", "std must be a scalar or have the mask's shape"),
    ("empty-mask", "mask is empty"),
    ("length", "expected 9"),
    ("operator-shape", "output of coarsen:2"),
])
def test_validate_rejects_bad_observations(case, match):
    mask, values, std = _good()
    op = None
    if case == "mask-shape":
        mask, values = mask[:, :2], values[:, :2]
    elif case == "values-shape":
        values = values[:, :2]
    elif case == "1-d-mask":
        mask, values = mask[:, 0], values[:, 0]
    elif case == "nan-observed":
        values[2, 0] = np.nan
    elif case == "inf-observed":
        values[4, 0] = np.inf
    elif case == "std-zero":
        std = 0.0
    elif case == "std-negative":
        std = -1.0
    elif case == "std-entry-zero":
        std = np.full(mask.shape, 0.5)
        std[6, 0] = 0.0
    elif case == "std-shape":
        std = np.full((8,), 0.5)
    elif case == "empty-mask":
        mask = np.zeros_like(mask)
    elif case == "operator-shape":
        op = "coarsen:2"                       # a 3-variable state is not divisible by 2
        mask, values = np.ones((8, 3), dtype=bool), np.ones((8, 3))
    obs = Observation(mask, values, std, operator=op)
    with pytest.raises(ObservationError, match=match) as info:
        obs.validate((4, 4) if case == "operator-shape" else (3,), length=9 if case == "length" else None)
    assert "\n" not in str(info.value)


def test_empty_mask_allowed_on_request():
    mask, values, std = _good()
    Observation(np.zeros_like(mask), values, std).validate((3,), allow_empty=True)


def test_load_rejects_bad_files(tmp_path):
    missing = tmp_path / "absent.npz"
    with pytest.raises(ObservationError, match="not found"):
        Observation.load(missing)

    no_std = tmp_path / "no_std.npz"
    np.savez(no_std, mask=np.ones((4, 3), dtype=bool), values=np.ones((4, 3)))
    with pytest.raises(ObservationError, match="lacks std"):
        Observation.load(no_std)

    import h5py

    no_keys = tmp_path / "no_keys.h5"
    with h5py.File(no_keys, "w") as f:
        f.create_dataset("values", data=np.ones((4, 3)))
    with pytest.raises(ObservationError, match="lacks mask, std"):
        Observation.load(no_keys)

    for name, payload in [("corrupt.npz", b"PK\x03\x04 this is not a zip archive"),
                          ("corrupt.h5", b"\x89HDF\r\n\x1a\n garbage"),
                          ("text.npz", b"mask,values,std\n1,2,3\n")]:
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ObservationError, match="cannot read observation file") as info:
            Observation.load(path)
        assert "\n" not in str(info.value)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mask=np.ones((2, 3), dtype=bool), values=np.array([{"a": 1}], dtype=object), std=0.5)
    with pytest.raises(ObservationError, match="cannot read"):
        Observation.load(pickled)

    bad_op = tmp_path / "bad_op.npz"
    np.savez(bad_op, mask=np.ones((2, 3), dtype=bool), values=np.ones((2, 3)), std=0.5, operator="blur:2")
    with pytest.raises(ObservationError, match="unknown observation operator"):
        Observation.load(bad_op)

    bad_mask = tmp_path / "bad_mask.npz"
    np.savez(bad_mask, mask=np.full((2, 3), 0.5), values=np.ones((2, 3)), std=0.5)
    with pytest.raises(ObservationError, match="boolean"):
        Observation.load(bad_mask)


@pytest.mark.parametrize("op,state", [(Coarsen(4), (12,)), (Coarsen(2), (2, 4, 6)), (Subsample(3), (2, 6, 6)),
                                      (Identity(), (5,))])
def test_operator_gain_is_diag_of_j_jt(op, state):
    # x = x_n · s: the gain of an operator is diag(J Jᵀ) of x_n ↦ op(x_n · s), for each output
    s = 0.5 + torch.rand(state, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: op((v * s)[None], len(state))[0],
                                             torch.zeros(state, dtype=torch.float64))
    expected = jac.reshape(*op.output_shape(state), -1).square().sum(-1)
    _close(op.gain(s[None] ** 2, len(state))[0], expected, rtol=1e-10)
