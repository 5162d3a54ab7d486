"""Closing the window mid-run: every job is cancelled and its thread ends, whatever it was doing.

Nothing here measures time: a job that honours the stop flag ends at its next step,
so the runner's thread must have finished once ``shutdown`` returns (it reports so),
and the window is closed.
"""

from __future__ import annotations

import threading
import time

import numpy as np


def _looping_job(started: threading.Event, ignore_for: float = 0.0):
    def job(report, should_stop):
        started.set()
        t0 = time.monotonic()
        i = 0
        while True:
            if should_stop() and time.monotonic() - t0 >= ignore_for:
                raise InterruptedError("stopped")
            i += 1
            if i % 10 == 0:
                report(i)
            time.sleep(0.001)
    return job


def test_shutdown_quits_the_threads_event_loop(qtbot):
    from sda_gui.app.workers import JobRunner

    runner = JobRunner()
    started = threading.Event()
    assert runner.start(_looping_job(started), "loop")
    qtbot.waitUntil(started.is_set, timeout=20_000)
    thread = runner._thread
    assert runner.shutdown(timeout_s=60)     # ends at the job's next step, not after the timeout
    assert not runner.running and thread.isFinished()


def test_a_job_that_ignores_the_stop_is_left_to_finish(qtbot):
    from sda_gui.app import workers

    runner = workers.JobRunner()
    started = threading.Event()
    assert runner.start(_looping_job(started, ignore_for=0.5), "stubborn")
    qtbot.waitUntil(started.is_set, timeout=20_000)
    assert not runner.shutdown(timeout_s=0.0)  # still running: not joined, not destroyed
    assert not runner.running and workers._ORPHANS
    qtbot.waitUntil(lambda: not workers._ORPHANS, timeout=30_000)   # it ended by itself


def _close(window, qtbot, asked):
    window.confirm = lambda text: asked.append(text) or True
    window.close()
    assert not window.isVisible()
    assert window.shutdown_report and all(window.shutdown_report.values()), window.shutdown_report
    runners = (window.assimilation_panel.runner, window.system_panel.runner, window.training_panel.runner)
    assert not any(r.running for r in runners)


def test_close_while_sampling(window, qtbot):
    panel = window.assimilation_panel
    panel.steps_spin.setValue(4000)
    with qtbot.waitSignal(panel.runner.progress, timeout=60_000):
        assert window.assimilate()
    _close(window, qtbot, [])


def test_close_while_simulating_a_truth(window, qtbot):
    sp = window.system_panel
    sp.length_spin.setValue(4096)
    with qtbot.waitSignal(sp.runner.progress, timeout=60_000):
        assert sp.simulate()
    _close(window, qtbot, [])


def test_close_while_training(window, qtbot):
    tp = window.training_panel
    tp.n_traj_spin.setValue(4)
    tp.traj_len_spin.setValue(16)
    tp.width_spin.setValue(8)
    tp.depth_spin.setValue(1)
    tp.batch_spin.setValue(8)
    tp.steps_spin.setValue(1_000_000)
    assert tp.train()
    qtbot.waitUntil(lambda: len(tp._steps) > 0, timeout=60_000)
    asked = []
    _close(window, qtbot, asked)
    assert asked and "being trained" in asked[0]


def test_close_while_simulating_training_fields(window, qtbot):
    """The slowest phase to stop: fields simulated for training (one state of a batch takes long)."""
    from sda_gui.core.systems import make_system

    st, tp = window.state, window.training_panel
    st.set_truth(np.zeros((6, 2, 32, 32), np.float32), system=make_system("kolmogorov", resolution=64, size=32))
    tp.data_combo.setCurrentIndex(tp.data_combo.findData("simulate"))
    tp.n_traj_spin.setValue(64)
    tp.traj_len_spin.setValue(64)
    tp.width_spin.setValue(8)
    tp.depth_spin.setValue(1)
    phases = []
    tp.runner.progress.connect(lambda payload: phases.append(payload[0]))
    assert tp.train()
    qtbot.waitUntil(lambda: "simulate" in phases, timeout=120_000)
    _close(window, qtbot, [])
    assert "train" not in phases


def test_closing_asks_about_unsaved_results(window, qtbot, tmp_path):
    with qtbot.waitSignal(window.assimilation_panel.runEnded, timeout=60_000):
        assert window.assimilate()
    asked = []
    window.confirm = lambda text: asked.append(text) or False
    window.close()
    assert window.isVisible() and asked and "the results" in asked[0]   # declined: still open
    assert window.save_session(str(tmp_path / "s.h5"))
    asked.clear()
    window.close()                       # saved: nothing to ask
    assert not asked and not window.isVisible()
