"""Kolmogorov flow in the app: a form sized for the machine, time estimates, model checks."""

from __future__ import annotations

import numpy as np
import pytest


def test_form_offers_grid_choices_and_hides_the_plumbing(window, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sp = window.system_panel
    sp.set_system_name("kolmogorov")
    assert sp.param_names == ["resolution", "size", "reynolds", "drag"]
    params = sp.params()
    assert params["resolution"] == 128 and params["size"] == 64      # a CPU: 128², seconds not minutes
    assert sp.length_spin.value() == 16
    assert not sp.estimate_label.isHidden()
    quick = sp.estimate_label.text()
    assert "128²" in quick and "about" in quick and "min" not in quick
    sp.set_param("resolution", 256)
    assert sp.params()["resolution"] == 256
    assert "256²" in sp.estimate_label.text() and "min" in sp.estimate_label.text()
    sp.set_param("size", 32)
    system = sp.make_system()
    assert system.state_shape == (2, 32, 32) and system.resolution == 256
    assert system.params["burn_in"] == 250 and system.params["noise"] == 0.0     # hidden, not lost


def test_a_gpu_makes_256_the_default(monkeypatch):
    import torch

    from sda_gui.app.system_panel import app_defaults, expected_seconds

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert app_defaults("kolmogorov") == {"resolution": 256}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert app_defaults("kolmogorov") == {"resolution": 128}
    assert app_defaults("lorenz96") == {}
    slow = expected_seconds("kolmogorov", {"resolution": 256, "burn_in": 250}, 16)
    quick = expected_seconds("kolmogorov", {"resolution": 128, "burn_in": 250}, 16)
    assert 30 < quick < 60 and 5 * quick < slow
    assert expected_seconds("lorenz96", {}, 64) is None


def test_simulation_progress_shows_the_time_left(window, qtbot):
    sp = window.system_panel
    formats = []
    sp.runner.progress.connect(lambda _: formats.append(sp.progress.format()))
    sp.length_spin.setValue(400)
    with qtbot.waitSignal(window.state.truthChanged, timeout=60_000):
        assert sp.simulate()
    assert formats and all("ETA" in f for f in formats)
    assert formats[-1].startswith("state ")


def _tiny_unet(system, path):
    from sda_gui.core.diffusion.checkpoint import build_model, save_checkpoint

    model = build_model(system, 1, {"name": "unet", "channels": [4, 8], "blocks": 1})
    save_checkpoint(model, path)
    return str(path)


def test_a_model_trained_at_128_serves_a_256_truth(window, tmp_path):
    from sda_gui.core.systems import make_system

    st, panel = window.state, window.assimilation_panel
    uv = np.zeros((6, 2, 64, 64), np.float32)
    st.set_truth(uv, system=make_system("kolmogorov", resolution=256, size=64), source="test")
    path = _tiny_unet(make_system("kolmogorov", resolution=128, size=64), tmp_path / "k128.pt")
    assert panel.add_model_path(path), panel.error.text()
    assert st.model is not None and st.model.system["params"]["resolution"] == 128
    # another state grid is refused, with the reason
    other = _tiny_unet(make_system("kolmogorov", resolution=128, size=32), tmp_path / "k32.pt")
    assert not panel.select_model(other)
    assert "(2, 32, 32)" in panel.error.text() and st.model_path == path


@pytest.mark.parametrize("spec", ["coarsen:4", "subsample:2"])
def test_simulated_kolmogorov_keeps_the_operator_for_a_new_seed(window, spec):
    """A new truth of the same system keeps what the user chose to observe."""
    from sda_gui.core.systems import make_system

    st, ed = window.state, window.grid_editor
    system = make_system("kolmogorov", resolution=64, size=32)
    st.set_truth(np.zeros((6, 2, 32, 32), np.float32), system=system, source="a")
    assert ed.set_operator(spec)
    st.set_truth(np.ones((6, 2, 32, 32), np.float32), system=make_system("kolmogorov", resolution=64, size=32),
                 source="b")
    assert st.operator == spec and st.mask.shape[2:] == (32 // int(spec[-1]),) * 2
    assert np.allclose(st.observed_truth()[:, 0], 1.0)


def test_switching_to_a_field_draws_fewer_samples_by_default(window):
    from sda_gui.core.systems import make_system

    panel, state = window.assimilation_panel, window.state
    field = np.random.default_rng(0).standard_normal((8, 2, 32, 32)).astype(np.float32)
    state.set_truth(field, system=make_system("kolmogorov", resolution=64, size=32))
    assert panel.samples_spin.value() == 2
    panel.samples_spin.setValue(5)
    state.set_truth(field[:6], system=make_system("kolmogorov", resolution=64, size=32))
    assert panel.samples_spin.value() == 5  # the same kind of system: the user's choice stays
    ring = make_system("lorenz96")
    state.set_truth(ring.simulate(1, 16, seed=0)[0].numpy(), system=ring)
    assert panel.samples_spin.value() == 8


def test_the_gpu_model_chosen_on_a_cpu_says_so(window, monkeypatch):
    """Both shipped Kolmogorov models are listed; picking the GPU one for a CPU run warns."""
    import torch

    from sda_gui.core.systems import make_system

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    st, panel = window.state, window.assimilation_panel
    st.set_truth(np.zeros((6, 2, 64, 64), np.float32), system=make_system("kolmogorov", resolution=128, size=64))
    panel.refresh_models()
    names = [panel.model_combo.itemText(i) for i in range(panel.model_combo.count())]
    assert names[:2] == ["shipped: kolmogorov.pt", "shipped: kolmogorov_unet.pt"]
    assert "Sized for a GPU" not in panel.model_info.text()
    assert panel.select_model(panel.model_combo.itemData(1)), panel.error.text()
    assert "Sized for a GPU" in panel.model_info.text() and "kolmogorov.pt" in panel.model_info.text()
    panel.set_device("cpu")
    assert "Sized for a GPU" in panel.model_info.text()
    assert panel.select_model(panel.model_combo.itemData(0))
    assert "Sized for a GPU" not in panel.model_info.text()


def test_observed_cells_are_framed_on_the_truth_at_observed_states(qtbot):
    from sda_gui.app.result_plots import FieldPlots, observed_cell_frames
    from sda_gui.app.state import Results
    from sda_gui.core.observation import Observation
    from sda_gui.core.systems import make_system

    system = make_system("kolmogorov", resolution=64, size=32)
    mask = np.zeros((5, 2, 4, 4), bool)
    mask[::4] = True
    mask[4, :, 1, 2] = False                       # one coarse cell (x 8–15, y 16–23) left out
    obs = Observation(mask, np.zeros(mask.shape), 0.1, operator="coarsen:8")
    frames = observed_cell_frames(obs, system.state_shape)
    assert [f is None for f in frames] == [False, True, True, True, False]
    full, holed = frames[0], frames[4]
    assert full.shape == (256, 256, 4)             # 4 cells × 64 overlay pixels, rows = y
    assert (full[..., 3] == 0).mean() > 0.9         # frames only: the truth shows through
    # the left-out cell has no frame inside its block, the others do
    assert holed[128 + 5:192 - 5, 64 + 5:128 - 5, 3].max() == 0
    assert holed[128:192, 63, 3].min() == 255      # the neighbour on its left keeps its right frame
    assert full[128 + 32, 64, 3] == 255 and holed[128 + 32, 64, 3] == 0   # its own left frame
    # sampled points are framed pixel by pixel on the state grid
    sub = Observation(np.ones((5, 2, 16, 16), bool), np.zeros((5, 2, 16, 16)), 0.1, operator="subsample:2")
    pixel = observed_cell_frames(sub, system.state_shape)[0]
    assert pixel.shape == (256, 256, 4)            # 32 pixels × 8

    plots = FieldPlots(system)
    qtbot.addWidget(plots.widget)
    truth = np.random.default_rng(0).standard_normal((5, 2, 32, 32)).astype(np.float32)
    plots.set_results(Results(samples=truth[None] + 0.1, observation=obs, truth=truth))
    assert "framed: observed" in plots.panels["truth"][0].titleLabel.text
    plots.show_frame(0)
    assert plots.observed.image is not None and plots.observed.image.shape == (256, 256, 4)
    plots.show_frame(2)
    assert plots.observed.image is None
    plots.show_frame(4)
    assert np.array_equal(plots.observed.image, holed)
