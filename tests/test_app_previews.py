"""Live previews: prepared on the worker thread, drawn on fixed scales, skipped when unseen.

While the sampler runs, the worker computes what the results view draws of each
estimate (``result_plots.PlotData``, images already coloured with the run's scale), so
the UI thread only hands arrays to the plot items; colour bars, axis ranges and titles
keep still during a run, so a preview repaints pixels but never axes.
"""

from __future__ import annotations

import numpy as np
import pytest

#: seconds a worker may take to reach the next step or the end (never reached on a working build)
WAIT_S = 120


def test_colorize_draws_what_the_image_items_draw(qtbot):
    import pyqtgraph as pg

    from sda_gui.app.plotting import lut
    from sda_gui.app.result_plots import colorize, image_levels

    rng = np.random.default_rng(1)
    data = (3 * rng.standard_normal((40, 64))).astype(np.float32)
    data[3, 5] = np.nan
    for name, levels in (("CET-D1", (-4.3, 6.1)), ("viridis", (0.0, 2.5))):
        lo, hi = image_levels(levels)
        item = pg.ImageItem(axisOrder="row-major")
        item.setLookupTable(lut(name))
        item.setImage(data, autoLevels=False, levels=(lo, hi))
        item.render()
        qimg = item.qimage.convertToFormat(pg.QtGui.QImage.Format.Format_RGBA8888)
        drawn = pg.functions.ndarray_from_qimage(qimg)[:, :, :4]
        ours = colorize(data, levels, lut(name))
        assert ours.shape == drawn.shape and ours.dtype == np.uint8
        ok = np.isfinite(data)
        assert np.array_equal(ours[..., 3], np.where(ok, 255, 0))
        # same lookup-table entry, at worst the neighbouring one at a level boundary
        diff = np.abs(ours[ok][:, :3].astype(int) - drawn[ok][:, :3].astype(int)).max(axis=1)
        assert (diff == 0).mean() > 0.99 and diff.max() <= 12


def _run_with_every_preview(window, qtbot, monkeypatch, steps=6):
    """Runs the panel's assimilation with the worker in step with the UI thread.

    Each progress report waits on the worker until the UI thread has handled it (and
    queued its preview), so every preview is shown before the next step is sampled,
    however fast or busy the machine is: the test counts previews, it does not race them.
    """
    import threading

    from sda_gui.app import assimilation_panel

    monkeypatch.setattr(assimilation_panel, "PREVIEW_INTERVAL_S", 0.0)
    panel = window.assimilation_panel
    panel.steps_spin.setValue(steps)
    view = window.results_view
    handled = threading.Semaphore(0)
    reports, late = [], []
    real_start = panel.runner.start

    def start(fn, name="job"):
        def in_step_with_the_ui(report, should_stop):
            def report_and_wait(payload):
                reports.append(payload)
                report(payload)
                if not handled.acquire(timeout=WAIT_S):
                    late.append(payload)
            return fn(report_and_wait, should_stop)
        return real_start(in_step_with_the_ui, name)

    monkeypatch.setattr(panel.runner, "start", start)
    seen = []

    def record():
        p = window.state.preview
        if p is None:
            return
        plots = view.plots
        seen.append({"prepared": p.prepared, "shown": view.shown is p,
                     "bars": {k: bar._sda_levels for k, (_, _, bar, _) in plots.hov.items() if k != "error"},
                     "curve_range": plots.curve_plot._sda_range,
                     "titles": {k: plot.titleLabel.text for k, (plot, *_) in plots.hov.items()}})

    release = lambda _payload: handled.release()  # noqa: E731
    panel.runner.progress.connect(release)        # after the panel's own handler
    window.state.previewChanged.connect(record)   # after the view's own handler
    try:
        with qtbot.waitSignal(panel.runEnded, timeout=WAIT_S * 1000) as ended:
            assert window.assimilate()
    finally:
        window.state.previewChanged.disconnect(record)
        panel.runner.progress.disconnect(release)
    assert ended.args == ["finished"], (ended.args, window.last_error)
    assert not late, f"{len(late)} progress reports were not handled by the UI within {WAIT_S} s"
    return seen, reports


def test_previews_come_prepared_and_keep_their_scales(window, qtbot, monkeypatch, one_torch_thread):
    from sda_gui.app.result_plots import PlotData, image_levels

    seen, reports = _run_with_every_preview(window, qtbot, monkeypatch, steps=6)
    # the sampler reports every step, each with an estimate (no interval), and the UI shows each one
    assert len(reports) == 6 and all(r[2] is not None for r in reports)
    assert len(seen) == len(reports)
    for s in seen:
        d = s["prepared"]
        assert s["shown"] and isinstance(d, PlotData) and d.kind == "ring"
        # coloured on the worker: the UI thread hands bytes to Qt
        assert all(img.dtype == np.uint8 and img.shape[-1] == 4 for img in d.arrays["images"].values())
    # one scale for the whole run: no colour bar, axis range or title changes between previews
    for key in ("bars", "curve_range", "titles"):
        assert all(s[key] == seen[0][key] for s in seen), key
    # the final samples get their own levels, and images drawn through them (not the run's colours)
    res = window.state.results
    final = res.prepared
    assert isinstance(final, PlotData) and not res.preview
    assert final.arrays["images"]["spread"].dtype == np.float32
    plots = window.results_view.plots
    _, img, bar, _ = plots.hov["spread"]
    assert np.array_equal(img.image, final.arrays["images"]["spread"])
    assert bar._sda_levels == image_levels(final.levels["spread"])
    np.testing.assert_allclose(final.arrays["std"], np.std(res.samples, axis=0), rtol=1e-4, atol=1e-5)


def test_a_preview_waits_while_the_results_are_hidden(window):
    from sda_gui.app.state import Results

    st, view = window.state, window.results_view
    window.tabs.setCurrentWidget(window.grid_editor)
    assert not view.isVisible()
    samples = st.truth[None] + np.zeros((2, 1, 1), np.float32)
    preview = Results(samples=samples, observation=st.observation(), truth=st.truth, preview=True)
    st.set_preview(preview)
    assert view.shown is not preview          # nothing drawn for nobody
    window.tabs.setCurrentWidget(view)
    assert view.shown is preview              # drawn when it shows


def test_a_preview_arriving_after_the_run_is_dropped(window):
    from sda_gui.app.state import Results

    panel, st = window.assimilation_panel, window.state
    assert not panel.runner.running
    panel._pending_preview = Results(samples=st.truth[None].copy(), observation=st.observation(), truth=st.truth,
                                     preview=True)
    panel._show_preview()
    assert st.preview is None and panel._pending_preview is None


@pytest.mark.parametrize("kind", ["lorenz63", "field"])
def test_prepared_previews_of_the_other_plots(qtbot, kind):
    from sda_gui.app.bench import make_results_view
    from sda_gui.app.result_plots import PlotData
    from sda_gui.app.state import Results

    view = make_results_view(kind, n_samples=4, length=16)
    qtbot.addWidget(view)
    res = view.state.results
    run = Results(samples=np.full_like(res.samples, np.nan), observation=res.observation, truth=res.truth,
                  preview=True)
    prepare = view.prepare_for_run(run)
    plots = view.plots
    ranges = []
    for scale in (0.1, 5.0):   # a wild estimate must not rescale the axes mid-run
        d = prepare((res.truth[None] + scale * np.ones_like(res.samples)).astype(np.float32))
        assert isinstance(d, PlotData) and d.key == (plots.mode, plots.sample)
        view.state.set_preview(Results(samples=res.samples, observation=res.observation, truth=res.truth,
                                       preview=True, prepared=d))
        if kind == "field":
            assert plots.mean_w is d.arrays["mean"] and plots.mean_w.dtype == np.uint8
            h, w = res.samples.shape[-2:]   # fields are [x, y], images [y, x]: 64 × 64 either way here
            assert (plots.rect.width(), plots.rect.height()) == (w, h)
            assert plots.panels["mean"][1].image.shape == (h, w, 4)
            ranges.append(plots.panels["mean"][2]._sda_levels)
        else:
            assert plots.shown is d.arrays["shown"]
            ranges.append([tuple(map(tuple, it["plot"].viewRange())) for it in plots.var_plots])
        view.step(1)    # animation over prepared (coloured) frames
    assert ranges[0] == ranges[1]
    view.state.set_results(res)   # final results: own scales again
    assert not plots._running and plots.run_levels is None
