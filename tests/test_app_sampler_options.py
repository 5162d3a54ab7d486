"""Final corrections and the dynamics term in the *Assimilate* panel: shown, checked, run, saved.

F = −1 ("same as C") is the sampler without final corrections; with C = 0 and F = 0 the
run must equal it sample for sample, and F = 2 must change the samples (the sampler
then does two Langevin corrections on its last step). Dynamics q > 0 changes the
samples with the SDA guidance and is greyed out (and not run) with another guidance.
"""

from __future__ import annotations

import numpy as np
import pytest


def _run(qtbot, window):
    with qtbot.waitSignal(window.assimilation_panel.runEnded, timeout=120_000) as blocker:
        assert window.assimilate()
    assert blocker.args[0] == "finished"
    return window.state.results


def test_the_form_offers_final_corrections_off_by_default(window):
    from sda_gui.app.sampler_config import SettingsError

    form = window.assimilation_panel.form
    assert form.final_spin.value() == -1 and form.final_spin.text() == "same as C"
    assert window.assimilation_panel.sampler_settings()["final_corrections"] == -1
    form.apply({"final_corrections": 4}, strict=True)
    assert form.final_spin.value() == 4
    for bad in (-2, 17, 2.5, "8"):
        with pytest.raises(SettingsError):
            form.apply({"final_corrections": bad}, strict=True)
        assert form.final_spin.value() == 4     # a refused value changes nothing
    form.apply({"final_corrections": 99}, strict=False)   # preferences of another version: skipped
    assert form.final_spin.value() == 4


def test_final_corrections_reach_the_sampler(window, qtbot):
    panel = window.assimilation_panel
    panel.seed_spin.setValue(5)
    off = _run(qtbot, window)
    assert off.settings["final_corrections"] == -1
    panel.final_spin.setValue(0)                 # C = 0 everywhere: the same sampler
    zero = _run(qtbot, window)
    np.testing.assert_array_equal(zero.samples, off.samples)
    panel.final_spin.setValue(2)
    two = _run(qtbot, window)
    assert two.settings["final_corrections"] == 2
    assert np.isfinite(two.samples).all() and not np.array_equal(two.samples, off.samples)
    assert "(final 2)" in window.results_view.metrics_label.text()


def test_final_corrections_and_dynamics_are_remembered_and_saved(qtbot, settings_path, tiny_model_path, tmp_path):
    from sda_gui.app.main_window import MainWindow

    w = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w)
    w.assimilation_panel.final_spin.setValue(6)
    w.assimilation_panel.dynamics_spin.setValue(0.25)
    session = tmp_path / "s.h5"
    assert w.save_session(str(session))
    w.close()
    w2 = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w2)
    panel = w2.assimilation_panel
    assert (panel.final_spin.value(), panel.dynamics_spin.value()) == (6, 0.25)   # the preferences
    panel.final_spin.setValue(-1)
    panel.dynamics_spin.setValue(0.0)
    assert w2.open_session(str(session))
    assert (panel.final_spin.value(), panel.dynamics_spin.value()) == (6, 0.25)   # the session
    w2.shutdown()


def test_a_session_saved_before_final_corrections_and_dynamics_opens_with_them_off(window, tmp_path, monkeypatch):
    from sda_gui.app import session_actions

    path = tmp_path / "old.h5"
    assert window.save_session(str(path))
    real = session_actions.load_session

    def older(p):
        data = real(p)
        data.settings["assimilation"].pop("final_corrections")
        data.settings["assimilation"].pop("dynamics_std")
        return data

    monkeypatch.setattr(session_actions, "load_session", older)
    window.assimilation_panel.final_spin.setValue(8)
    window.assimilation_panel.dynamics_spin.setValue(0.5)
    assert window.open_session(str(path))
    assert window.assimilation_panel.final_spin.value() == -1
    assert window.assimilation_panel.dynamics_spin.value() == 0.0


def test_dynamics_q_reaches_the_sampler_with_sda_guidance_only(window, qtbot):
    panel = window.assimilation_panel
    assert panel.dynamics_spin.value() == 0.05           # Lorenz-96's default
    panel.dynamics_spin.setValue(0.0)
    assert panel.dynamics_spin.text() == "off"
    off = _run(qtbot, window)
    assert off.settings["dynamics_std"] == 0.0
    panel.dynamics_spin.setValue(1.0)
    on = _run(qtbot, window)
    assert on.settings["dynamics_std"] == 1.0 and not np.array_equal(on.samples, off.samples)
    assert "dyn. q 1" in window.results_view.metrics_label.text()
    panel.set_guidance("dps")
    assert not panel.dynamics_spin.isEnabled() and panel.gamma_spin.isEnabled() is False
    dps = _run(qtbot, window)                    # the value stays in the form but is not part of the run
    assert dps.settings["dynamics_std"] == 0.0 and panel.dynamics_spin.value() == 1.0
    panel.set_guidance("sda")
    assert panel.dynamics_spin.isEnabled()
    panel.form.set_dynamics_available(False)     # a system built from data
    assert not panel.dynamics_spin.isEnabled()


def test_another_kind_of_system_starts_with_dynamics_off(window):
    form = window.assimilation_panel.form
    form.dynamics_spin.setValue(0.5)
    assert form.switch_system("lorenz63")
    assert form.dynamics_spin.value() == 0.0
    assert form.switch_system("lorenz96")                # back: Lorenz-96's own default
    assert form.dynamics_spin.value() == 0.05


# the weak-constraint refinement ----------------------------------------------------------
def test_refine_reaches_the_method_with_any_guidance(window, qtbot):
    panel = window.assimilation_panel
    assert panel.refine_spin.value() == 0 and panel.refine_spin.text() == "off"
    assert (panel.refine_spin.minimum(), panel.refine_spin.maximum(), panel.refine_spin.singleStep()) == (0, 1000, 10)
    assert panel.sampler_settings()["refine_iterations"] == 0
    panel.seed_spin.setValue(5)
    with qtbot.waitSignal(panel.runEnded, timeout=300_000) as blocker:
        assert window.assimilate()
    assert blocker.args[0] == "finished"
    off = window.state.results
    assert off.settings["refine_iterations"] == 0
    panel.refine_spin.setValue(10)
    with qtbot.waitSignal(panel.runEnded, timeout=300_000) as blocker:
        assert window.assimilate()
    assert blocker.args[0] == "finished"
    res = window.state.results
    assert res.settings["refine_iterations"] == panel.refine_spin.value() == 10
    assert res.samples.shape == off.samples.shape and np.isfinite(res.samples).all()
    assert not np.array_equal(res.samples, off.samples)      # the same draws, then refined
    assert "refined 10" in window.results_view.metrics_label.text()
    panel.set_guidance("dps")                    # unlike dynamics q, the refinement works with every guidance
    assert panel.refine_spin.isEnabled() and not panel.dynamics_spin.isEnabled()


def test_refine_is_greyed_out_and_not_run_without_dynamics(window, qtbot, tmp_path, monkeypatch):
    panel = window.assimilation_panel
    panel.refine_spin.setValue(20)
    panel.dynamics_spin.setValue(0.1)
    # the system of this run has no transition: both terms are greyed out and sent as off
    monkeypatch.setattr(window.state.system, "has_dynamics", False, raising=False)
    panel.form.set_dynamics_available(False)
    assert not panel.refine_spin.isEnabled() and not panel.dynamics_spin.isEnabled()
    with qtbot.waitSignal(panel.runEnded, timeout=300_000) as blocker:
        assert window.assimilate()
    assert blocker.args[0] == "finished"
    res = window.state.results
    assert res.settings["refine_iterations"] == 0 and res.settings["dynamics_std"] == 0.0
    assert panel.refine_spin.value() == 20        # the value stays in the form
    assert "refined" not in window.results_view.metrics_label.text()
    monkeypatch.undo()
    # a file of data naming no system: a system without dynamics, greyed out through the state
    x = np.random.default_rng(0).normal(size=(2, 16, 40)).astype(np.float32)
    np.save(tmp_path / "l96.npy", x)
    panel.form.set_dynamics_available(True)
    assert panel.refine_spin.isEnabled()
    assert window.system_panel.load_file(str(tmp_path / "l96.npy"))
    assert not window.state.system.has_dynamics and not panel.refine_spin.isEnabled()


def test_refine_is_remembered_and_saved(qtbot, settings_path, tiny_model_path, tmp_path):
    from sda_gui.app.main_window import MainWindow

    w = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w)
    w.assimilation_panel.refine_spin.setValue(30)
    session = tmp_path / "s.h5"
    assert w.save_session(str(session))
    w.close()
    w2 = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w2)
    panel = w2.assimilation_panel
    assert panel.refine_spin.value() == 30                 # the preferences
    panel.refine_spin.setValue(0)
    assert w2.open_session(str(session))
    assert panel.refine_spin.value() == 30                 # the session
    w2.shutdown()


def test_a_session_saved_before_the_refinement_opens_with_it_off(window, tmp_path, monkeypatch):
    from sda_gui.app import session_actions
    from sda_gui.app.sampler_config import SettingsError

    path = tmp_path / "old.h5"
    assert window.save_session(str(path))
    real = session_actions.load_session

    def older(p):
        data = real(p)
        data.settings["assimilation"].pop("refine_iterations")
        return data

    monkeypatch.setattr(session_actions, "load_session", older)
    window.assimilation_panel.refine_spin.setValue(40)
    assert window.open_session(str(path))
    assert window.assimilation_panel.refine_spin.value() == 0
    form = window.assimilation_panel.form
    for bad in (-1, 1001, 2.5, "10"):
        with pytest.raises(SettingsError):
            form.apply({"refine_iterations": bad}, strict=True)
    assert form.refine_spin.value() == 0
