"""Nonlinear and derived observation operators in the app's "Observe through".

A small Kolmogorov-shaped truth (16² velocity from a made-up vorticity, no solver run)
is observed through ``vorticity`` (painted on the (1, H, W) vorticity grid) and a
Lorenz-96 truth through ``saturate``; the values the state draws are compared with the
operator written out here (spectral curl, ``w / (1 + |w|)``), so a wrong operator fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _flow(length=4, size=16):
    import torch

    from sda_gui.core.systems.kolmogorov import velocity_from_vorticity

    x = np.linspace(0, 2 * np.pi, size, endpoint=False)
    X, Y = np.meshgrid(x, x, indexing="ij")
    w = np.stack([np.sin(2 * Y + 0.3 * t) + 0.5 * np.cos(X - 0.2 * t) for t in range(length)])
    return velocity_from_vorticity(torch.tensor(w, dtype=torch.float32)).numpy(), w


def _kolmogorov(window, length=4, size=16):
    from sda_gui.core.systems import make_system

    uv, w = _flow(length, size)
    window.state.set_truth(uv, system=make_system("kolmogorov", resolution=2 * size, size=size), source="test")
    return uv, w


def _choose(editor, key):
    """Picks an operator in the combo, as a user does."""
    i = editor.operator_combo.findData(key)
    assert i >= 0, [editor.operator_combo.itemData(j) for j in range(editor.operator_combo.count())]
    editor.operator_combo.setCurrentIndex(i)
    editor.operator_combo.activated.emit(i)


def _click(qtbot, editor, col, row):
    pos = editor.cell_center_in_view(col, row)
    qtbot.mouseClick(editor.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_a_velocity_field_offers_vorticity_and_its_saturation(window):
    _kolmogorov(window)
    keys = window.grid_editor.operator_box.keys()
    assert {"identity", "coarsen", "subsample", "vorticity", "vorticity+saturate", "saturate"} <= set(keys)


def test_vorticity_is_painted_on_its_own_grid_and_observed_through_the_core(window, qtbot):
    st, ed = window.state, window.grid_editor
    uv, w = _kolmogorov(window)
    _choose(ed, "vorticity")
    assert st.operator == "vorticity" and st.observed_grid == (1, 16, 16)
    assert st.mask.shape == (4, 1, 16, 16) and ed.grid_shape() == (16, 16)
    assert "vorticity" in ed.operator_label.text()
    _click(qtbot, ed, 3, 5)
    assert st.editor.count == 1 and st.mask[0, 0, 3, 5]
    assert ed.generate_observations(seed=0, std=0.01)
    obs = st.observation()
    assert obs.operator == "vorticity" and obs.mask.shape == (4, 1, 16, 16)
    # the observed value is the curl of the truth at that point (plus 0.01 noise)
    assert abs(obs.values[0, 0, 3, 5] - w[0, 3, 5]) < 0.05
    back = obs.op(__import__("torch").as_tensor(uv), 3).numpy()
    assert np.allclose(back[:, 0], w, atol=1e-4)


def test_switching_from_vorticity_to_coarse_blocks_keeps_the_place_and_undo_restores(window, qtbot):
    st, ed = window.state, window.grid_editor
    _kolmogorov(window)
    _choose(ed, "vorticity")
    _click(qtbot, ed, 5, 9)
    assert st.editor.count == 1
    assert ed.set_operator("coarsen:4")
    # ω at (5, 9) reads u and v there: the 4×4 block (1, 2) of both components
    assert st.mask.shape == (4, 2, 4, 4) and st.mask[0, :, 1, 2].all() and st.editor.count == 2
    st.editor.undo()
    assert st.operator == "vorticity" and st.mask[0, 0, 5, 9] and st.editor.count == 1


def test_saturate_on_lorenz96_draws_saturated_values(window):
    st, ed = window.state, window.grid_editor
    assert st.system.name == "lorenz96"
    before = st.editor.count
    _choose(ed, "saturate")
    assert st.operator == "saturate" and st.observed_grid == tuple(st.state_shape)
    assert st.editor.count == before            # the same cells: saturate acts entry by entry
    assert ed.generate_observations(seed=1, std=1e-3)
    obs = st.observation()
    assert obs.operator == "saturate" and obs.mask.shape == (st.length, *st.state_shape)
    x = st.truth[obs.mask]
    assert np.allclose(obs.values[obs.mask], x / (1 + np.abs(x)), atol=1e-2)
    assert np.abs(obs.values[obs.mask]).max() < 1


def test_an_observation_file_through_a_chain_is_adopted(window, tmp_path):
    from sda_gui.core.observation import synthesize

    st = window.state
    uv, _ = _kolmogorov(window)
    mask = np.zeros((4, 1, 16, 16), bool)
    mask[::2, 0, ::4, ::4] = True
    synthesize(uv, mask, 0.05, seed=0, operator="vorticity+saturate").save(tmp_path / "obs.npz")
    assert window.grid_editor.load_observations(str(tmp_path / "obs.npz")), window.grid_editor.error.text()
    assert st.operator == "vorticity+saturate" and np.array_equal(st.mask, mask)
    assert window.grid_editor.operator_combo.currentData() == "vorticity+saturate"


def test_a_plugin_operator_is_offered_once_its_file_is_loaded(window, tmp_path, restore_registries):
    st = window.state
    plugin = tmp_path / "cube.py"
    plugin.write_text(
        "from sda_gui.core.observation import Operator\n\n\n"
        "class Cube(Operator):\n"
        "    name = 'cube'\n"
        "    linear = False\n\n"
        "    def __call__(self, x, state_ndim):\n"
        "        return x ** 3\n")
    assert "plugin:cube" not in window.grid_editor.operator_box.keys()
    window.system_panel.load_system_file(str(plugin))
    window.grid_editor.operator_box.sync(st.state_shape, st.operator, st.observed_grid, False)
    assert "plugin:cube" in window.grid_editor.operator_box.keys()
    _choose(window.grid_editor, "plugin:cube")
    assert st.operator == "plugin:cube"
    assert window.grid_editor.generate_observations(seed=0, std=1e-3)
    obs = st.observation()
    assert np.allclose(obs.values[obs.mask], st.truth[obs.mask] ** 3, rtol=1e-2, atol=1e-2)


def test_the_app_operator_helpers_compose_a_chain():
    from sda_gui.app import operators as ops

    assert ops.kind_of("coarsen:2+saturate") == "coarsen" and ops.factor_of("coarsen:2+subsample:2") == 4
    assert ops.kind_of("vorticity") == "vorticity" and ops.factor_of("vorticity") == 1
    assert ops.cell_extent("coarsen:2+subsample:2", 1) == (4, 5)
    assert list(ops.positions("subsample:2+coarsen:2", 2)) == [1.0, 5.0]
    assert ops.observed_shape((2, 16, 16), "vorticity+coarsen:4") == (1, 4, 4)
    m = np.zeros((1, 1, 4, 4), bool)
    m[0, 0, 1, 2] = True
    fp = ops.convert_mask(m, "vorticity+coarsen:4", None, (2, 16, 16))
    assert fp.shape == (1, 2, 16, 16) and fp.sum() == 2 * 16 and fp[0, :, 4:8, 8:12].all()


def _assimilate(qtbot, window):
    with qtbot.waitSignal(window.assimilation_panel.runEnded, timeout=120_000) as blocker:
        assert window.assimilate()
    return blocker.args[0]


def test_assimilating_through_saturate_runs_the_core_operator(window, qtbot):
    st, ed = window.state, window.grid_editor
    _choose(ed, "saturate")
    ed.regular_pattern(every_time=4, every_space=2)
    assert ed.generate_observations(seed=0, std=0.05)
    assert _assimilate(qtbot, window) == "finished", window.assimilation_panel.error.text()
    res = st.results
    assert res.observation.operator == "saturate" and res.samples.shape == (3, st.length, *st.state_shape)
    assert np.isfinite(res.metrics["residual_std"])


def test_assimilating_a_flow_through_its_vorticity(window, qtbot, tmp_path):
    import torch

    from sda_gui.core.diffusion.checkpoint import save_checkpoint
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.systems import make_system

    system = make_system("kolmogorov", resolution=32, size=16)
    data = torch.tensor(np.stack([_flow(6, 16)[0] for _ in range(2)]))
    config = TrainConfig(k=1, arch={"name": "unet", "channels": [4, 8], "blocks": 1, "precondition": True},
                         steps=10, batch_size=4, lr=3e-3, val_every=10)
    model, _ = train_model(system, data, config)
    save_checkpoint(model, tmp_path / "flow.pt", training=model.training_info)
    st, ed, panel = window.state, window.grid_editor, window.assimilation_panel
    _kolmogorov(window, length=6)
    assert panel.add_model_path(str(tmp_path / "flow.pt")), panel.error.text()
    _choose(ed, "vorticity")
    ed.regular_pattern(every_time=2, every_space=2)
    assert ed.generate_observations(seed=0, std=0.1)
    panel.samples_spin.setValue(2)
    assert _assimilate(qtbot, window) == "finished", panel.error.text()
    assert st.results.observation.operator == "vorticity" and st.results.samples.shape == (2, 6, 2, 16, 16)
    assert np.isfinite(st.results.metrics["residual_std"])
