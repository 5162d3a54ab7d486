"""Fixtures for the desktop-app tests (``tests/test_app_*.py``).

Qt is imported lazily inside the fixtures so that collecting the science tests never
loads it. Every app test runs offscreen with a temporary settings file.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def settings_path(tmp_path, monkeypatch):
    """A fresh INI file for QSettings, so tests never read or write the user's settings."""
    path = tmp_path / "sda-studio.ini"
    monkeypatch.setenv("SDA_STUDIO_SETTINGS", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A very small Lorenz-96 score model trained for a few hundred steps.

    Its samples are poor, but every code path of the app (worker, progress, preview,
    results, metrics) runs in a second or two on a CPU. An untrained network (ε ≈ 0)
    would blow samples up by 1/μ(1) = 1000, which the engine rightly refuses.
    """
    import torch

    from sda_gui.core.diffusion.checkpoint import save_checkpoint
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.systems import make_system

    system = make_system("lorenz96")
    data = system.simulate(8, 32, seed=123)
    config = TrainConfig(k=1, arch={"name": "ringconv", "width": 8, "depth": 1, "kernel": 3}, steps=300,
                         batch_size=64, lr=3e-3, val_every=300)
    # tiny tensors: with other processes on the cores, torch's threads wait on each other
    # far longer than they compute, and one thread trains the same model many times faster
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, _ = train_model(system, data, config)
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("models") / "lorenz96-tiny.pt"
    save_checkpoint(model, path, training=model.training_info)
    return str(path)


@pytest.fixture
def window(qtbot, settings_path, tiny_model_path):
    """The main window with the default scenario and the tiny model selected."""
    from sda_gui.app.main_window import MainWindow

    w = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w, timeout=60_000)   # pytest-qt's default, 5 s, is too short on a busy machine
    assert w.assimilation_panel.add_model_path(tiny_model_path)
    panel = w.assimilation_panel
    panel.samples_spin.setValue(3)
    panel.steps_spin.setValue(4)
    panel.corrections_spin.setValue(0)
    panel.set_device("cpu")
    yield w
    w.shutdown()
    # nothing may outlive the window: every worker thread has ended
    runners = (w.assimilation_panel.runner, w.system_panel.runner, w.training_panel.runner, w.compare_panel.runner)
    assert not any(r.running for r in runners)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors on a shared 2-core machine: one intra-op thread is several times faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def restore_registries():
    """Systems and operators a test registers from a plugin file are forgotten after it.

    Registries are process-wide: a plugin system left behind would make a name that later
    tests use as "unknown" (``lorenz84``) known.
    """
    from sda_gui.core import operators
    from sda_gui.core.systems import SYSTEMS, plugins

    saved = [(d, dict(d)) for d in (SYSTEMS, plugins._SOURCES, plugins._LOADED, operators.PLUGIN_OPERATORS)]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


@pytest.fixture
def lesson_window(qtbot, settings_path):
    """The main window with a lesson runner and its dock, on the CPU: ``(window, runner, dock)``."""
    from sda_gui.app.lesson_dock import LessonDock
    from sda_gui.app.lesson_runner import LessonRunner
    from sda_gui.app.main_window import MainWindow

    w = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w, timeout=60_000)
    w.assimilation_panel.set_device("cpu")
    runner = LessonRunner(w)
    dock = LessonDock(runner, w)
    runner.changed.connect(dock.refresh_check)
    yield w, runner, dock
    runner.shutdown()
    w.shutdown()
