"""Observation operators in the app: coarse grids in the editor, files, sessions, results.

A small Kolmogorov-shaped truth (32² velocity, no solver run) is observed through
``coarsen``/``subsample``; every check compares with the operator computed here
independently (numpy block means and strides), so a wrong operator fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from sda_gui.core.observation import Observation, synthesize


def _flow(length=6, size=32, phase=0.0):
    """A smooth velocity field ``(L, 2, size, size)`` from a made-up vorticity."""
    import torch

    from sda_gui.core.systems.kolmogorov import velocity_from_vorticity

    x = np.linspace(0, 2 * np.pi, size, endpoint=False)
    X, Y = np.meshgrid(x, x, indexing="ij")
    w = np.stack([np.sin(4 * Y + 0.3 * t + phase) + 0.5 * np.cos(2 * X - 0.2 * t + 2 * phase) + 0.3 * np.sin(X + Y)
                  for t in range(length)])
    return velocity_from_vorticity(torch.tensor(w, dtype=torch.float32)).numpy()


def _block_mean(x, f):
    """Block means over the last two axes, written out with reshape (not the core's pooling)."""
    *head, h, w = x.shape
    return x.reshape(*head, h // f, f, w // f, f).mean(axis=(-3, -1))


def _kolmogorov(window, length=6, size=32):
    from sda_gui.core.systems import make_system

    uv = _flow(length, size)
    window.state.set_truth(uv, system=make_system("kolmogorov", resolution=2 * size, size=size), source="test")
    return uv


def _click(qtbot, editor, col, row):
    pos = editor.cell_center_in_view(col, row)
    qtbot.mouseClick(editor.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def _drag(editor, start, end, steps=6):
    vp = editor.plot_widget.viewport()
    a, b = editor.cell_center_in_view(*start), editor.cell_center_in_view(*end)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, steps + 1):
        QTest.mouseMove(vp, QPoint(round(a.x() + (b.x() - a.x()) * i / steps),
                                   round(a.y() + (b.y() - a.y()) * i / steps)), 5)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def _choose(editor, kind, factor=None):
    """Picks the operator with the two combos, as a user does."""
    editor.operator_combo.setCurrentIndex(editor.operator_combo.findData(kind))
    editor.operator_combo.activated.emit(editor.operator_combo.currentIndex())
    if factor is not None:
        editor.factor_combo.setCurrentIndex(editor.factor_combo.findData(factor))
        editor.factor_combo.activated.emit(editor.factor_combo.currentIndex())


# --- the editor on a coarse grid ----------------------------------------------------------------

def test_coarsen_control_reshapes_the_grid_and_shows_the_coarse_truth(window):
    st, ed = window.state, window.grid_editor
    uv = _kolmogorov(window)
    assert st.operator is None and st.mask.shape == (6, 2, 32, 32)
    assert [ed.factor_combo.itemData(i) for i in range(ed.factor_combo.count())] == [2, 4, 8]
    _choose(ed, "coarsen", 8)
    assert st.operator == "coarsen:8"
    assert st.mask.shape == (6, 2, 4, 4) and ed.grid_shape() == (4, 4)
    ed.display_combo.setCurrentIndex(ed.display_combo.findData(1))          # v
    ed.set_time(2)
    coarse_v = _block_mean(uv[2, 1], 8)                                      # [x, y]
    assert np.allclose(ed.image.image, coarse_v.T, atol=1e-5)               # image rows are y
    assert "8×8" in ed.operator_label.text()
    assert "block mean of v" in ed.colorbar.axis.labelText
    ed.display_combo.setCurrentIndex(ed.display_combo.findData("vorticity"))
    assert ed.image.image.shape == (4, 4)
    _choose(ed, "subsample", 4)
    assert st.operator == "subsample:4" and st.mask.shape == (6, 2, 8, 8)
    _choose(ed, "identity")
    assert st.operator is None and st.mask.shape == (6, 2, 32, 32)


def test_every_tool_paints_coarse_cells(window, qtbot):
    st, ed = window.state, window.grid_editor
    _kolmogorov(window)
    assert ed.set_operator("coarsen:8")
    ed.clear()
    ed.set_time(3)
    _click(qtbot, ed, 1, 2)                                   # column = x, row = y
    assert st.mask[3, :, 1, 2].all() and st.editor.count == 2
    ed.set_tool("rectangle")
    _drag(ed, (2, 0), (3, 1))
    assert st.mask[3, :, 2:4, 0:2].all() and st.editor.count == 2 + 8
    ed.set_tool("eraser")
    _click(qtbot, ed, 1, 2)
    assert not st.mask[3, :, 1, 2].any() and st.editor.count == 8
    ed.set_tool("brush")
    ed.brush_spin.setValue(3)
    ed.paint_cell(0, 0)                                        # clipped at the edge: 2×2 cells
    assert st.mask[3, :, 0:2, 0:2].all() and st.editor.count == 8 + 2 * 4
    ed.undo()
    assert st.editor.count == 8
    ed.redo()
    ed.copy_time(3, targets=range(6))
    assert all(np.array_equal(st.mask[t], st.mask[3]) for t in range(6))
    ed.regular_pattern(every_time=2, every_space=1)           # every 2nd state, every coarse cell
    assert st.editor.count == 3 * 2 * 16
    assert st.mask[::2].all() and not st.mask[1::2].any()
    ed.invert()
    assert st.mask[1::2].all() and not st.mask[::2].any()
    ed.random_pattern(0.5, 3)
    assert st.mask.shape == (6, 2, 4, 4) and 0.3 < st.mask.mean() < 0.7
    assert f"<b>{st.editor.count}</b> / 192" in ed.count_label.text()
    ed.show_hover((1, 2))
    assert "pixels x 8–15, y 16–23" in ed.hover_label.text()


def test_regular_pattern_on_a_coarse_ring(window):
    """Lorenz-96 through coarsen:2: 20 blocks of 2 variables; every 4th state, every 2nd block."""
    st, ed = window.state, window.grid_editor
    assert ed.set_operator("coarsen:2")
    assert st.mask.shape == (64, 20) and ed.grid_shape() == (64, 20)
    ed.regular_pattern(every_time=4, every_space=2)
    assert st.editor.count == 16 * 10
    assert st.mask[::4, ::2].all() and not st.mask[1::4].any()
    assert np.allclose(ed.image.image, st.truth.reshape(64, 20, 2).mean(-1).T, atol=1e-5)


def test_operator_change_is_one_undo_step_and_keeps_values_aside(window):
    st, ed = window.state, window.grid_editor
    _kolmogorov(window)
    ed.regular_pattern(every_time=3, every_space=2)
    fine_mask = st.mask.copy()
    assert ed.generate_observations(seed=5, std=0.2)
    fine_values = st.obs_values.copy()
    assert ed.set_operator("coarsen:8")
    # the time structure survives: states 0 and 3 fully observed, the others not
    assert st.mask[::3].all() and not st.mask[1::3].any() and not st.mask[2::3].any()
    assert not st.values_stale and st.obs_values.shape == (6, 2, 4, 4)   # redrawn on the coarse grid
    assert ed.undo_button.isEnabled()
    ed.undo()
    assert st.operator is None and np.array_equal(st.mask, fine_mask)
    assert np.array_equal(st.obs_values, fine_values) and not st.values_stale
    assert ed.grid_shape() == (32, 32) and ed.operator_combo.currentData() == "identity"
    ed.redo()
    assert st.operator == "coarsen:8" and ed.grid_shape() == (4, 4)
    assert ed.operator_combo.currentData() == "coarsen" and ed.factor_combo.currentData() == 8


def test_an_operator_that_does_not_fit_says_so_once(window):
    st, ed = window.state, window.grid_editor
    _kolmogorov(window)
    mask = st.mask.copy()
    errors = []
    ed.errorRaised.connect(errors.append)
    assert not ed.set_operator("coarsen:3")
    assert errors == ["coarsen:3 does not divide the state grid (32, 32)"]
    assert not ed.set_operator("blur:2")
    assert "unknown observation operator" in ed.error.text()
    assert st.operator is None and np.array_equal(st.mask, mask)
    assert ed.operator_combo.currentData() == "identity"


def test_lorenz63_offers_only_saturation(window, qtbot):
    sp = window.system_panel
    sp.set_system_name("lorenz63")
    sp.length_spin.setValue(20)
    with qtbot.waitSignal(window.state.truthChanged, timeout=30_000):
        assert sp.simulate()
    ed = window.grid_editor
    assert ed.operator_box.keys() == ["identity", "saturate"] and ed.factor_combo.count() == 0
    assert "directly" in ed.operator_label.text()


# --- observations, files and sessions ------------------------------------------------------------

def test_generated_observations_are_the_operator_of_the_truth_plus_noise(window):
    st, ed = window.state, window.grid_editor
    uv = _kolmogorov(window)
    assert ed.set_operator("coarsen:2")
    ed.regular_pattern(every_time=1, every_space=1)
    assert ed.generate_observations(seed=11, std=0.5)
    obs = st.observation()
    assert obs.operator == "coarsen:2" and obs.mask.shape == (6, 2, 16, 16)
    noise = obs.values - _block_mean(uv, 2)
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 0.5) < 0.05        # 3072 draws
    again = synthesize(uv, obs.mask, 0.5, seed=11, operator="coarsen:2")
    assert np.allclose(again.values, obs.values, atol=1e-5)                 # seeded, reproducible
    assert ed.generate_observations(seed=12)
    assert not np.allclose(st.observation().values, obs.values)
    ed.set_operator("subsample:4")
    sub = st.observation()
    assert sub.operator == "subsample:4"
    assert np.abs(sub.values[sub.mask] - uv[:, :, ::4, ::4][sub.mask]).max() < 3.0   # noise, not another field


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_operator_observation_files_roundtrip(window, tmp_path, suffix):
    st, ed = window.state, window.grid_editor
    uv = _kolmogorov(window)
    mask = np.zeros((6, 2, 4, 4), bool)
    mask[::2, :, 1:3] = True
    written = synthesize(uv, mask, 0.3, seed=4, operator="coarsen:8")
    path = tmp_path / f"coarse{suffix}"
    written.save(path)
    assert ed.load_observations(str(path)), ed.error.text()
    assert st.operator == "coarsen:8" and np.array_equal(st.mask, mask)
    assert ed.grid_shape() == (4, 4) and ed.operator_combo.currentData() == "coarsen"
    got = st.observation(regenerate=False)
    assert np.allclose(got.values[mask], written.values[mask], atol=1e-5) and got.std == pytest.approx(0.3)
    out = tmp_path / f"again{suffix}"
    assert ed.save_observations(str(out))
    back = Observation.load(out)
    assert back.operator == "coarsen:8" and np.array_equal(back.mask, mask)
    assert np.allclose(back.values[mask], written.values[mask], atol=1e-5)
    ed.undo()                                           # loading was one step: back to direct
    assert st.operator is None and st.mask.shape == (6, 2, 32, 32)


def test_files_that_do_not_fit_are_refused(window, tmp_path):
    st, ed = window.state, window.grid_editor
    _kolmogorov(window)
    bad = tmp_path / "bad.npz"
    np.savez(bad, mask=np.ones((6, 2, 5, 5), bool), values=np.zeros((6, 2, 5, 5)), std=1.0, operator="coarsen:8")
    assert not ed.load_observations(str(bad))
    assert "coarsen:8" in ed.error.text() and "(L, 2, 4, 4)" in ed.error.text()
    assert st.operator is None


def test_session_keeps_the_operator_and_old_sessions_open(window, tmp_path):
    import h5py

    from sda_gui.app.state import Results

    st, ed = window.state, window.grid_editor
    uv = _kolmogorov(window)
    assert ed.set_operator("coarsen:8")
    ed.regular_pattern(every_time=2, every_space=1)
    assert ed.generate_observations(seed=3, std=0.25)
    samples = uv[None] + np.zeros((2, *uv.shape), np.float32)
    st.set_results(Results(samples=samples, observation=st.observation(), truth=uv))
    mask, values = st.mask.copy(), st.obs_values.copy()
    path = tmp_path / "coarse.h5"
    assert window.save_session(str(path))
    ed.set_operator(None)
    ed.random_pattern(0.1, 1)
    assert window.open_session(str(path)), window.last_error
    assert st.operator == "coarsen:8" and np.array_equal(st.mask, mask)
    assert np.allclose(st.obs_values, values) and not st.values_stale
    assert ed.grid_shape() == (4, 4) and ed.factor_combo.currentData() == 8
    assert st.results.observation.operator == "coarsen:8"
    assert window.results_view.metrics["residual_std"] < 0.5 and window.results_view.metrics["operator"] == "coarsen:8"
    # a file written before operators existed: no operator attribute at all
    ed.set_operator(None)
    st.set_results(None)
    old = tmp_path / "old.h5"
    assert window.save_session(str(old))
    with h5py.File(old, "r") as f:
        assert "operator" not in f.attrs
    ed.set_operator("coarsen:4")
    assert window.open_session(str(old))
    assert st.operator is None and st.mask.shape == (6, 2, 32, 32)


# --- results -------------------------------------------------------------------------------------

def test_metrics_use_the_operator(window):
    from sda_gui.app.result_metrics import compute_metrics
    from sda_gui.app.state import Results

    uv = _flow()
    mask = np.ones((6, 2, 4, 4), bool)
    obs = synthesize(uv, mask, 0.1, seed=0, operator="coarsen:8")
    rng = np.random.default_rng(0)
    samples = uv[None] + rng.standard_normal((4, *uv.shape)).astype(np.float32)
    m = compute_metrics(Results(samples=samples, observation=obs, truth=uv))
    pred = _block_mean(samples.astype(np.float64), 8)[:, mask]
    expected = np.sqrt(np.mean((pred - obs.values[mask]) ** 2))
    assert m["residual_std"] == pytest.approx(expected, rel=1e-5)
    # block means of unit noise over 64 pixels have std 1/8, far below the pixel noise
    assert m["residual_std"] < 0.3 and m["operator"] == "coarsen:8"


def test_ring_and_low_dim_plots_with_operator_observations(window):
    from sda_gui.app.result_plots import LowDimPlots
    from sda_gui.app.state import Results
    from sda_gui.core.systems import make_system

    st, ed = window.state, window.grid_editor
    assert ed.set_operator("coarsen:2")
    ed.regular_pattern(every_time=1, every_space=1)
    st.set_results(Results(samples=st.truth[None].copy(), observation=st.observation(), truth=st.truth))
    view = window.results_view
    view.set_frame(5)
    plots = view.plots
    x, y = plots.obs_item.getData()
    assert np.allclose(x, np.arange(20) * 2 + 0.5)                          # block centres
    assert np.allclose(y, st.observation().values[5], atol=1e-5)
    assert "block means ×2" in plots.legend.getLabel(plots.obs_item).text
    assert "A = coarsen:2" in view.metrics_label.text()
    # a coarse Lorenz-63 file (only from a file: the editor does not offer it) draws no points
    l63 = make_system("lorenz63")
    truth = l63.simulate(1, 12, seed=0)[0].numpy()
    obs = synthesize(truth, np.ones((12, 1), bool), 1.0, operator="coarsen:3")
    low = LowDimPlots(l63)
    low.set_results(Results(samples=truth[None], observation=obs, truth=truth))
    low.show_frame(3)
    assert all(np.size(items["obs"].getData()[0]) == 0 for items in low.var_plots)


# --- assimilation through an operator ------------------------------------------------------------

def _spy_engine(monkeypatch):
    """Records the observation each assimilation gets, wherever the sampler is called from
    (the engine's module, or the SDA method that imported it by name)."""
    import importlib

    seen = []

    def wrap(fn):
        def spy(model, observation, *args, **kwargs):
            seen.append(observation)
            return fn(model, observation, *args, **kwargs)
        return spy

    for name in ("sda_gui.core.assimilation", "sda_gui.core.methods.sda"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "assimilate"):
            monkeypatch.setattr(module, "assimilate", wrap(module.assimilate))
    return seen


def _run(qtbot, window, timeout=120_000):
    with qtbot.waitSignal(window.assimilation_panel.runEnded, timeout=timeout) as blocker:
        assert window.assimilate()
    return blocker.args[0]


def test_assimilate_lorenz96_through_coarsen(window, qtbot, monkeypatch, one_torch_thread):
    st, ed = window.state, window.grid_editor
    seen = _spy_engine(monkeypatch)
    assert ed.set_operator("coarsen:2")
    ed.regular_pattern(every_time=2, every_space=1)
    assert _run(qtbot, window) == "finished", window.assimilation_panel.error.text()
    assert seen and seen[0].operator == "coarsen:2" and seen[0].mask.shape == (64, 20)
    res = st.results
    assert res.samples.shape == (3, 64, 40) and res.observation.operator == "coarsen:2"
    assert np.isfinite(res.metrics["residual_std"]) and res.metrics["n_obs"] == 32 * 20
    assert "A = coarsen:2" in window.results_view.metrics_label.text()
    window.load_default_scenario()                     # a fresh start observes directly again
    assert st.operator is None and st.mask.shape == (64, 40) and not st.values_stale


@pytest.fixture(scope="module")
def tiny_unet_path(tmp_path_factory):
    """A 2-D preconditioned U-Net trained for a few steps on made-up 32² flows."""
    import torch

    from sda_gui.core.diffusion.checkpoint import save_checkpoint
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.systems import make_system

    system = make_system("kolmogorov", resolution=64, size=32)
    data = torch.tensor(np.stack([_flow(8, 32, phase=p) for p in np.linspace(0, 3, 4)]))
    config = TrainConfig(k=1, arch={"name": "unet", "channels": [4, 8], "blocks": 1, "precondition": True},
                         steps=30, batch_size=8, lr=3e-3, val_every=30)
    model, _ = train_model(system, data, config)
    path = tmp_path_factory.mktemp("models") / "kolmogorov-tiny.pt"
    save_checkpoint(model, path, training=model.training_info)
    return str(path)


def test_assimilate_a_field_through_coarsen(window, qtbot, monkeypatch, tiny_unet_path, one_torch_thread):
    st, ed, panel = window.state, window.grid_editor, window.assimilation_panel
    seen = _spy_engine(monkeypatch)
    _kolmogorov(window)
    assert panel.add_model_path(tiny_unet_path), panel.error.text()
    assert ed.set_operator("coarsen:8")
    ed.regular_pattern(every_time=2, every_space=1)
    assert ed.generate_observations(seed=0, std=0.1)
    panel.samples_spin.setValue(2)
    assert _run(qtbot, window) == "finished", panel.error.text()
    assert seen[0].operator == "coarsen:8" and seen[0].mask.shape == (6, 2, 4, 4)
    assert st.results.samples.shape == (2, 6, 2, 32, 32)
    assert np.isfinite(st.results.metrics["residual_std"])


def test_an_operator_that_does_not_fit_the_states_is_refused_in_one_line(window, tmp_path):
    import numpy as np

    from sda_gui.core.observation import Observation

    shape = (window.state.length, *window.state.state_shape)
    before = window.state.mask.copy()
    obs = Observation(mask=np.ones(shape, bool), values=np.zeros(shape), std=1.0, operator="vorticity")
    path = tmp_path / "vorticity.npz"
    obs.save(path)
    assert not window.grid_editor.load_observations(str(path))
    text = window.grid_editor.observations.error.text()
    assert "vorticity" in text and "(2, H, W)" in text and "\n" not in text
    assert np.array_equal(window.state.mask, before)
