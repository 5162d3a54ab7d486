"""The results views and the observation editor: what they say, where things sit, what they show.

Synthetic results (truth plus made-up samples, no sampler run): a Lorenz-63 run that
spikes at its observed times, as an unstable sampler does, must be flagged in words
with what helps; the plots label physical values, keep their legend off the curves,
show the truth beside the mean and mark the time shown; at 1280×800 the observation
box (σ, *Generate from truth*, Save/Load) is on screen without scrolling.
"""

from __future__ import annotations

import numpy as np
import pytest

from sda_gui.core.observation import synthesize


@pytest.fixture(scope="module")
def l63():
    from sda_gui.core.systems import make_system

    system = make_system("lorenz63")
    truth = system.simulate(1, 65, seed=0)[0].numpy()
    mask = np.zeros(truth.shape, bool)
    mask[::8] = True                      # every 8 states, all variables (the case of issue 13)
    return system, truth, synthesize(truth, mask, 0.4, seed=0)


def _blown(truth, mask, rng):
    """Samples near the truth that spike to ±80 at every observed state."""
    samples = truth[None] + 0.3 * rng.standard_normal((16, *truth.shape))
    spikes = 80.0 * rng.choice([-1.0, 1.0], size=(16, 1, truth.shape[1]))
    samples[:, mask.any(1)] += spikes
    return samples.astype(np.float32)


def _results(samples, obs, truth, settings=None):
    from sda_gui.app.state import Results

    return Results(samples=samples, observation=obs, truth=truth, settings=settings or {})


# --- metrics: say when it blew up ------------------------------------------------------------------

def test_a_blown_up_run_is_flagged_with_what_helps(l63):
    from sda_gui.app.result_metrics import compute_metrics

    system, truth, obs = l63
    samples = _blown(truth, obs.mask, np.random.default_rng(0))
    settings = {"guidance": "sda", "steps": 16, "corrections": 0}
    m = compute_metrics(_results(samples, obs, truth, settings), system=system)
    assert m["residual_std"] > 3 * m["obs_std"]
    # |x − 25| / 8.6 for z, |x| / 8 for x: a spike of 80 is ~10 climatological std away
    assert m["out_of_range"] == 16 and m["max_excursion"] > 6
    text = " ".join(m["warnings"])
    assert "do not fit the observations" in text and "climatological range" in text
    assert "more steps (this run: 16)" in text and "C ≥ 1" in text and "MMPS" in text
    assert text.count("Try ") == 1                     # the advice once, after the symptoms
    # an MMPS run with corrections is not told to use them
    again = compute_metrics(_results(samples, obs, truth, {"guidance": "mmps", "steps": 256, "corrections": 2}),
                            system=system)
    advice = again["warnings"][-1]
    assert "MMPS" not in advice and "C ≥ 1" not in advice and "more steps (this run: 256)" in advice


def test_a_sound_run_is_not_flagged_and_over_fitting_is(l63):
    from sda_gui.app.result_metrics import compute_metrics

    system, truth, obs = l63
    rng = np.random.default_rng(1)
    good = (truth[None] + 0.3 * rng.standard_normal((16, *truth.shape))).astype(np.float32)
    m = compute_metrics(_results(good, obs, truth), system=system)
    assert m["warnings"] == [] and m["out_of_range"] == 0
    assert 0.3 * m["obs_std"] < m["residual_std"] < 3 * m["obs_std"]
    # samples that pass exactly through the noisy values: residual far below σ_y
    exact = good.copy()
    exact[:, obs.mask] = obs.values[obs.mask]
    m = compute_metrics(_results(exact, obs, truth), system=system)
    assert len(m["warnings"]) == 1 and "closer than their noise allows" in m["warnings"][0]
    # without a system there is no climatology to compare with, the residual check still runs
    blown = compute_metrics(_results(_blown(truth, obs.mask, rng), obs, truth))
    assert "out_of_range" not in blown and "do not fit" in blown["warnings"][0]


# --- the results view ------------------------------------------------------------------------------

def _view(qtbot, system, results, size=(960, 640)):
    from sda_gui.app.plotting import configure_pyqtgraph
    from sda_gui.app.results_view import ResultsView
    from sda_gui.app.state import AppState

    configure_pyqtgraph()
    state = AppState()
    state.system = system
    view = ResultsView(state)
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    state.set_results(results)
    return view


def test_the_view_shows_the_warnings_and_hides_them_for_a_sound_run(qtbot, l63):
    from sda_gui.app.result_metrics import compute_metrics

    system, truth, obs = l63
    rng = np.random.default_rng(2)
    blown = _results(_blown(truth, obs.mask, rng), obs, truth, {"guidance": "dps", "steps": 16, "corrections": 0})
    blown.metrics = compute_metrics(blown, system=system)
    view = _view(qtbot, system, blown)
    assert view.warning_label.isVisible() and len(view.warnings) == 2
    assert "climatological range" in view.warning_label.text() and "MMPS" in view.warning_label.text()
    assert "color:#b00020" in view.metrics_label.text().replace(" ", "")   # the residual in red
    good = _results((truth[None] + 0.3 * rng.standard_normal((4, *truth.shape))).astype(np.float32), obs, truth)
    view.state.set_results(good)   # no metrics yet (a reopened session): the view computes them
    assert not view.warning_label.isVisible() and view.warnings == []
    assert view.metrics["warnings"] == [] and view.metrics["out_of_range"] == 0


@pytest.fixture(scope="module")
def l96():
    from sda_gui.core.systems import make_system

    system = make_system("lorenz96")
    truth = system.simulate(1, 24, seed=0)[0].numpy()
    mask = np.random.default_rng(0).random(truth.shape) < 0.2
    obs = synthesize(truth, mask, 1.0, seed=0)
    samples = (truth[None] + 0.5 * np.random.default_rng(1).standard_normal((6, *truth.shape))).astype(np.float32)
    return system, truth, obs, samples


def _labels(legend) -> list[str]:
    return [label.text for _, label in legend.items]


def test_ring_plots_truth_panel_legend_marker_and_units(qtbot, l96):
    system, truth, obs, samples = l96
    view = _view(qtbot, system, _results(samples, obs, truth))
    plots = view.plots
    assert type(plots).__name__ == "RingPlots"
    # the truth beside the mean, as a Hovmöller map (rows: variables j, columns: time)
    _, img, bar, _ = plots.hov["truth"]
    assert np.allclose(img.image, truth.T, atol=1e-6)
    # physical values, named as the system names them
    labels = [bar.axis.labelText for _, _, bar, _ in plots.hov.values()] + [plots.curve_plot.getAxis("left").labelText]
    assert all("x_j" in text and "model units" not in text for text in labels)
    # the legend lists what is drawn, in a row of its own that no plot overlaps
    assert _labels(plots.legend) == ["samples", "posterior mean", "truth", "observations", "time t (in the maps)"]
    legend_box = plots.legend.sceneBoundingRect()
    for plot in [plots.curve_plot] + [p for p, *_ in plots.hov.values()]:
        assert not legend_box.intersects(plot.getViewBox().sceneBoundingRect())
    view.set_mode("spread")
    assert _labels(plots.legend)[0] == "posterior mean ± 1 std" and "samples" not in _labels(plots.legend)
    view.set_mode("one", sample=2)
    assert _labels(plots.legend)[0] == "sample #3" and "posterior mean" not in _labels(plots.legend)
    # the time marker: at the centre of the shown time step's column, black between white edges
    view.set_frame(0)
    marker = plots.hov["mean"][3]
    assert marker.value() == pytest.approx(0.5)
    assert marker.core_pen.color().getRgb()[:3] == (0, 0, 0) and marker.core_pen.widthF() >= 2
    assert marker.pen.color().getRgb()[:3] == (255, 255, 255) and marker.pen.widthF() > marker.core_pen.widthF()
    assert marker.zValue() > img.zValue() and len(marker.markers) == 2   # on top, a triangle at each end
    view.set_frame(5)
    assert all(m.value() == pytest.approx(5.5) for *_, m in plots.hov.values())
    assert plots.time_text.toPlainText() == f"t = {5 * system.dt:.2f} (step 5)"
    assert view.frame_label.text().startswith(f"t = {5 * system.dt:.2f}")


def test_low_dim_plots_keep_the_legend_off_the_curves(qtbot, l63):
    system, truth, obs = l63
    samples = (truth[None] + np.random.default_rng(3).standard_normal((4, *truth.shape))).astype(np.float32)
    view = _view(qtbot, system, _results(samples, obs, truth))
    plots = view.plots
    assert type(plots).__name__ == "LowDimPlots"
    names = _labels(plots.legend)
    assert names[:4] == ["samples", "posterior mean", "truth", "observations"] and "time t" in names
    assert "mean at t" in names and "truth at t" in names
    legend_box = plots.legend.sceneBoundingRect()
    for items in plots.var_plots + plots.phase:
        assert not legend_box.intersects(items["plot"].getViewBox().sceneBoundingRect())
    view.set_mode("spread")
    assert _labels(plots.legend)[0] == "mean ± 1 std"
    view.set_frame(7)
    assert all(items["line"].value() == 7 for items in plots.var_plots)


def test_field_plots_name_what_the_colours_show(qtbot):
    from sda_gui.core.systems import make_system

    system = make_system("kolmogorov", resolution=32, size=16)
    rng = np.random.default_rng(4)
    truth = rng.standard_normal((3, 2, 16, 16)).astype(np.float32)
    obs = synthesize(truth, np.ones(truth.shape, bool), 0.1, seed=0)
    view = _view(qtbot, system, _results(truth[None] + 0.1 * rng.standard_normal((2, *truth.shape)).astype(np.float32),
                                         obs, truth))
    labels = {k: bar.axis.labelText for k, (_, _, bar) in view.plots.panels.items()}
    assert labels["truth"] == labels["mean"] == "vorticity ω" and labels["spread"] == "std of vorticity ω"


# --- the editor at 1280×800 ------------------------------------------------------------------------

def test_the_observation_box_is_on_screen_at_1280_by_800(window, qtbot):
    from PySide6.QtWidgets import QApplication

    window.resize(1280, 800)
    window.tabs.setCurrentWidget(window.grid_editor)
    QApplication.processEvents()
    ed = window.grid_editor
    assert window.width() <= 1280 and window.height() <= 800
    # nothing of the side column needs scrolling, and each control is drawn whole
    assert ed.tools_scroll.verticalScrollBar().maximum() == 0
    for w in (ed.std_spin, ed.obs_seed_spin, ed.generate_button, ed.save_button, ed.load_button,
              ed.random_button, ed.regular_button, ed.invert_button, ed.operator_combo):
        assert w.isVisible() and w.visibleRegion().boundingRect().size() == w.size(), w
        corner = w.mapTo(window, w.rect().bottomRight())
        assert 0 <= corner.x() < window.width() and 0 <= corner.y() < window.height()
    # the colour bar of the grid names the quantity, not "model units"
    assert ed.colorbar.axis.labelText == "truth x_j"


def test_the_split_modules_keep_the_old_names():
    from sda_gui.app import grid_editor, result_plots, results_view

    assert {"RingPlots", "LowDimPlots", "FieldPlots", "PlotData", "colorize", "image_levels",
            "observed_cell_frames", "MODES", "spaghetti"} <= set(dir(result_plots))
    assert grid_editor.TOOLS == ("brush", "eraser", "rectangle", "erase rectangle")
    assert callable(results_view.plots_for_system)
