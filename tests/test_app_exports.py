"""Exports: GIF frames last what the chosen fps says, frames carry the time and the metrics,
SVG of the plots, and a failed write leaves nothing behind (every file through ``atomic_path``)."""

from __future__ import annotations

import numpy as np
import pytest


def _counter_widget(qtbot):
    """A widget whose picture changes with the frame shown (its text is the frame number)."""
    from PySide6.QtWidgets import QLabel

    label = QLabel("frame 0")
    label.resize(80, 30)
    qtbot.addWidget(label)
    label.show()
    return label, (lambda i: label.setText(f"frame {i}"))


def _gif_durations(path) -> list:
    from PIL import Image

    with Image.open(path) as im:
        out = []
        for i in range(im.n_frames):
            im.seek(i)
            out.append(im.info.get("duration"))
        return out


def test_gif_frame_time_follows_the_fps(qtbot, tmp_path):
    from sda_gui.app.export import export_animation, gif_frame_ms

    assert [gif_frame_ms(f) for f in (20, 10, 4, 30, 100, 0.5)] == [50, 100, 250, 30, 20, 2000]
    widget, show = _counter_widget(qtbot)
    for fps, ms in ((20, 50), (4, 250)):
        path = tmp_path / f"a{fps}.gif"
        assert export_animation(widget, show, 6, path, fps=fps) == 6
        assert _gif_durations(path) == [ms] * 6
    assert not list(tmp_path.glob(".*tmp*"))   # temporaries renamed, none left over


def test_mp4_plays_at_the_chosen_fps(qtbot, tmp_path):
    from sda_gui.app.export import export_animation, mp4_available

    if not mp4_available():
        pytest.skip("imageio-ffmpeg is not installed")
    import imageio.v2 as imageio

    widget, show = _counter_widget(qtbot)
    path = tmp_path / "a.mp4"
    assert export_animation(widget, show, 8, path, fps=12) == 8
    reader = imageio.get_reader(path)
    try:
        assert reader.get_meta_data()["fps"] == pytest.approx(12)
        assert reader.count_frames() == 8
    finally:
        reader.close()


def test_a_failed_export_is_one_line_and_leaves_no_file(qtbot, tmp_path, monkeypatch):
    import imageio.v2 as imageio

    from sda_gui.app.export import export_animation, export_svg

    widget, show = _counter_widget(qtbot)

    def broken(*args, **kwargs):
        raise RuntimeError("disk quota exceeded\nwhile writing frame 3")

    monkeypatch.setattr(imageio, "mimsave", broken)
    path = tmp_path / "a.gif"
    with pytest.raises(OSError) as err:
        export_animation(widget, show, 4, path, fps=10)
    assert str(err.value) == "could not write a.gif: disk quota exceeded"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no plots"):
        export_svg(widget, tmp_path / "a.svg")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def results_view(qtbot):
    from sda_gui.app.plotting import configure_pyqtgraph
    from sda_gui.app.result_metrics import compute_metrics
    from sda_gui.app.results_view import ResultsView
    from sda_gui.app.state import AppState, Results
    from sda_gui.core.observation import synthesize
    from sda_gui.core.systems import make_system

    configure_pyqtgraph()
    system = make_system("lorenz96", n=12)
    truth = system.simulate(1, 10, seed=0)[0].numpy()
    obs = synthesize(truth, np.random.default_rng(0).random(truth.shape) < 0.3, 1.0, seed=0)
    samples = (truth[None] + np.random.default_rng(1).standard_normal((3, *truth.shape))).astype(np.float32)
    res = Results(samples=samples, observation=obs, truth=truth, settings={"guidance": "sda", "steps": 8,
                                                                           "corrections": 1})
    res.metrics = compute_metrics(res, system=system)
    state = AppState()
    state.system = system
    view = ResultsView(state)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    state.set_results(res)
    return view


def test_exported_frames_carry_the_time_and_the_metrics(results_view, tmp_path, monkeypatch):
    from sda_gui.app import export

    view = results_view
    figure = view.plot_widget()
    assert figure.isAncestorOf(view.metrics_label) and figure.isAncestorOf(view.frame_label)
    assert "RMSE" in view.metrics_label.text()
    grabbed = []
    real = export.grab_rgb
    monkeypatch.setattr(export, "grab_rgb", lambda w: grabbed.append(real(w)) or grabbed[-1])
    assert export.export_animation(figure, view.set_frame, view.controller.n_frames, tmp_path / "a.gif", fps=10) == 10
    frames = np.stack(grabbed)   # what went into the file, before the GIF's palettes
    # the caption of the time changes from frame to frame, the metrics line stays
    cap = view.frame_label.geometry()
    met = view.metrics_label.geometry()
    caption = frames[:, cap.top():cap.bottom(), cap.left():cap.right()].astype(int)
    metrics = frames[:, met.top():met.bottom(), met.left():met.left() + 200].astype(int)
    assert all(np.abs(caption[i] - caption[i + 1]).max() > 0 for i in range(len(frames) - 1))
    assert np.array_equal(metrics, np.broadcast_to(metrics[0], metrics.shape)) and metrics[0].std() > 10
    assert view.frame_label.text() == f"t = {9 * view.state.system.dt:.2f} · step 9 / 9"


def test_svg_of_the_results_and_of_the_editor_grid(results_view, tmp_path):
    import pyqtgraph as pg

    from sda_gui.app.export import export_svg, find_scene_view

    view = results_view
    assert find_scene_view(view) is view.scene_widget()
    path = tmp_path / "results.svg"
    export_svg(view, path)
    data = path.read_bytes()
    assert data.startswith(b"<?xml") and b"<svg" in data and b"</svg>" in data
    assert b"State at time t" in data and b"Posterior mean" in data
    plot = pg.PlotWidget()
    plot.plot([0, 1, 2], [1, 0, 1])
    plot.setTitle("grid title")
    plot.resize(200, 150)
    plot.show()
    export_svg(plot, tmp_path / "grid.svg")
    assert b"grid title" in (tmp_path / "grid.svg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.svg", "results.svg"]
