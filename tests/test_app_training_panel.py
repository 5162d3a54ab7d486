"""The Training tab: stopping in every phase, what a stopped run reports, training on a loaded file."""

from __future__ import annotations

import numpy as np


def _small(tp, steps=1_000_000):
    tp.n_traj_spin.setValue(4)
    tp.traj_len_spin.setValue(16)
    tp.k_spin.setValue(1)
    tp.width_spin.setValue(8)
    tp.depth_spin.setValue(1)
    tp.batch_spin.setValue(8)
    tp.steps_spin.setValue(steps)


def test_stop_while_simulating_the_training_fields_leaves_no_model(window, qtbot):
    from sda_gui.core.systems import make_system

    st, tp = window.state, window.training_panel
    st.set_truth(np.zeros((6, 2, 32, 32), np.float32), system=make_system("kolmogorov", resolution=64, size=32))
    _small(tp)
    tp.n_traj_spin.setValue(64)
    tp.traj_len_spin.setValue(64)
    phases = []
    tp.runner.progress.connect(lambda payload: phases.append(payload[0]))
    assert tp.train()
    qtbot.waitUntil(lambda: "simulate" in phases, timeout=120_000)
    with qtbot.waitSignal(tp.trainingEnded, timeout=60_000) as blocker:
        tp.cancel()
    assert blocker.args == ["cancelled"] and "train" not in phases
    assert tp.model is None and not tp.save_button.isEnabled()
    assert "simulating" in tp.progress.format() and tp.status.text() == "No model was trained."


def test_a_stopped_run_agrees_with_its_model(window, qtbot, tmp_path):
    tp = window.training_panel
    _small(tp)
    assert tp.train()
    qtbot.waitUntil(lambda: len(tp._steps) > 0, timeout=60_000)
    with qtbot.waitSignal(tp.trainingEnded, timeout=60_000) as blocker:
        tp.cancel()
    assert blocker.args == ["stopped"]
    steps = tp.model.training_info["steps_done"]
    assert steps >= tp._steps[-1] >= 1
    assert tp.progress.format().startswith(f"stopped after {steps} steps")
    assert tp.status.text().startswith(f"Trained {steps} steps") and tp.status.text().endswith("assimilation.")
    assert tp.save_button.isEnabled() and not tp.model_saved
    xs, _ = tp.train_curve.getData()
    assert len(xs) >= 1 and not tp.plot_note.isVisible()
    path = tmp_path / "stopped.pt"
    assert tp.save_model(str(path)) == str(path) and tp.model_saved
    assert f"trained {steps} steps" in window.assimilation_panel.model_info.text()


def test_what_a_run_stopped_early_shows(window):
    """Stopped before any step: no model; after a few steps but before the first loss report: a note."""
    import torch

    tp = window.training_panel

    class Trained(torch.nn.Module):
        def __init__(self, steps):
            super().__init__()
            self.training_info = {"steps_done": steps}

    tp._t0 = 0.0
    tp.loss.clear()
    tp._on_finished((Trained(0), {"step": [], "train": [], "val": [], "stopped": True}))
    assert tp.model is None and not tp.save_button.isEnabled()
    assert "Save" not in tp.status.text() and "before the first step" in tp.progress.format()
    tp._on_finished((Trained(5), {"step": [], "train": [], "val": [], "stopped": True}))
    assert tp.model is not None and tp.save_button.isEnabled()
    assert tp.progress.format().startswith("stopped after 5 steps")
    assert tp.status.text() == "Trained 5 steps. Save the model to use it for assimilation."
    assert tp.plot_note.isVisible() and "step 5" in tp.plot_note.toPlainText()


def test_loaded_trajectories_are_the_default_training_data(window, tmp_path):
    tp = window.training_panel
    assert tp.data_combo.currentData() == "simulate"
    from sda_gui.core.datasets import save_trajectories
    from sda_gui.core.systems import make_system

    x = np.random.default_rng(0).normal(size=(3, 24, 40)).astype(np.float32)
    save_trajectories(tmp_path / "mine.h5", x, make_system("lorenz96"))     # a system that can simulate too
    assert window.system_panel.load_file(str(tmp_path / "mine.h5"))
    assert tp.data_combo.currentData() == "loaded" and not tp.n_traj_spin.isEnabled()
    tp.data_combo.setCurrentIndex(tp.data_combo.findData("simulate"))
    window.system_panel.traj_spin.setValue(1)          # another truth of the same file: the choice stays
    assert tp.data_combo.currentData() == "simulate"


def test_training_again_over_an_unsaved_model_asks(window, qtbot, tmp_path):
    tp = window.training_panel
    _small(tp, steps=20)
    with qtbot.waitSignal(tp.trainingEnded, timeout=60_000):
        assert tp.train()
    model, asked = tp.model, []
    tp.confirm = lambda text: asked.append(text) or False
    assert not tp.train(ask=True)
    assert asked and "not saved" in asked[0] and tp.model is model
    assert tp.save_model(str(tmp_path / "m.pt"))
    asked.clear()
    with qtbot.waitSignal(tp.trainingEnded, timeout=60_000):
        assert tp.train(ask=True)
    assert not asked


def test_training_data_are_simulated_in_chunks_that_stop_promptly():
    import torch

    from sda_gui.app.training_job import chunk_size, simulate_training_set
    from sda_gui.core.systems import make_system

    l96 = make_system("lorenz96", n=8)
    assert chunk_size(l96, 128) == 128                      # ODEs: one call
    field = make_system("kolmogorov", resolution=128, size=64)
    assert chunk_size(field, 128) == 3 and chunk_size(field, 128, "cuda") == 128
    reports = []
    x = simulate_training_set(l96, 5, 12, 3, reports.append, lambda: False)
    assert torch.equal(x, l96.simulate(5, 12, seed=3))      # one chunk: the same trajectories
    assert reports[-1][1] == reports[-1][2]                  # progress reaches its total
    stop = []

    def report(payload):
        stop.append(payload)

    try:
        simulate_training_set(l96, 5, 12, 3, report, lambda: len(stop) >= 2)
    except InterruptedError:
        pass
    else:
        raise AssertionError("a stop during the simulation must end it")
    assert len(stop) == 2
