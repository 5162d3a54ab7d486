"""The Compare tab: SDA and classical methods on the same observations, on the worker thread."""

import math

import numpy as np


def _tick(panel, names):
    panel.set_methods(names)
    assert panel.selected_methods() == [n for n in panel.method_checks if n in names]


def test_compare_runs_methods_side_by_side_and_exports(window, qtbot, tmp_path):
    panel = window.compare_panel
    window.state.ensure_engine()
    _tick(panel, ["sda", "letkf", "bpf"])
    panel.members_spin.setValue(4)
    assert not panel.reference_check.isVisible()  # Lorenz-96: no particle-filter reference
    with qtbot.waitSignal(panel.runner.finished, timeout=300_000):
        assert panel.run()
    comp = panel.comparison
    assert [r["method"] for r in comp.rows] == ["sda", "letkf", "bpf"]
    assert all(not r["error"] and math.isfinite(r["rmse"]) and r["n_members"] == 4 for r in comp.rows)
    assert panel.table.rowCount() == 3 and panel.table.item(1, 0).text() == "LETKF"
    # the truth's exchangeability p-value beside the rank χ²/dof, explained by the header's tooltip
    assert all(0 < r["rank_p"] <= 1 for r in comp.rows)
    headers = [panel.table.horizontalHeaderItem(j) for j in range(panel.table.columnCount())]
    (rank_p,) = [h for h in headers if h.text() == "rank p"]
    assert "one more member" in rank_p.toolTip()
    assert set(comp.members) == {"sda", "letkf", "bpf"}
    assert comp.members["letkf"].shape == (4, *window.state.truth.shape)
    # one mean and one spread image per method plus the truth, on shared colour levels
    titles = [t for t, _ in panel.plots.images]
    assert titles[0] == "truth" and len(titles) == 1 + 2 * 3
    means = [img for t, img in panel.plots.images if t.endswith("mean")]
    assert all(tuple(img.levels) == tuple(panel.plots.images[0][1].levels) for img in means)
    assert "lowest RMSE" in panel.status.text()
    paths = panel.export_report(str(tmp_path))
    assert all((tmp_path / name).stat().st_size > 0 for name in ("compare.md", "compare.csv", "compare.png"))
    assert "LETKF" in (tmp_path / "compare.md").read_text() and paths


def test_a_cancelled_comparison_keeps_the_previous_state(window, qtbot):
    panel = window.compare_panel
    window.state.ensure_engine()
    _tick(panel, ["bpf", "letkf"])
    with qtbot.waitSignal(panel.runner.cancelled, timeout=300_000):
        assert panel.run()
        panel.cancel()
    assert panel.comparison is None and "Cancelled" in panel.status.text()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_nothing_ticked_or_no_model_is_refused_in_one_line(window):
    panel = window.compare_panel
    _tick(panel, [])
    assert not panel.run() and "tick at least one method" in panel.status.text()
    _tick(panel, ["sda"])
    window.state.set_model(None)
    assert not panel.run() and "needs a score model" in panel.status.text()
    assert not panel.runner.running


def test_a_method_that_cannot_run_becomes_a_row_with_its_reason(window, qtbot, monkeypatch):
    from sda_gui.core.methods import MethodError
    from sda_gui.core.methods import particle

    def refuse(self, ctx):
        raise MethodError("refused on purpose")

    monkeypatch.setattr(particle.BootstrapPF, "run", refuse)
    panel = window.compare_panel
    window.state.ensure_engine()
    _tick(panel, ["letkf", "bpf"])
    panel.members_spin.setValue(4)
    with qtbot.waitSignal(panel.runner.finished, timeout=300_000):
        assert panel.run()
    rows = {r["method"]: r for r in panel.comparison.rows}
    assert rows["bpf"]["error"] == "refused on purpose" and np.isnan(rows["bpf"]["rmse"])
    assert "Could not run: Particle filter" in panel.status.text()


def test_a_session_saves_and_reopens_the_comparison(window, qtbot, tmp_path):
    panel = window.compare_panel
    window.state.ensure_engine()
    _tick(panel, ["letkf", "bpf"])
    panel.members_spin.setValue(4)
    with qtbot.waitSignal(panel.runner.finished, timeout=300_000):
        assert panel.run()
    rows = [(r["method"], r["rmse"]) for r in panel.comparison.rows]
    members = {k: v.copy() for k, v in panel.comparison.members.items()}
    path = tmp_path / "with-comparison.h5"
    assert window.save_session(str(path))
    panel.restore(None)
    assert panel.comparison is None and panel.table.rowCount() == 0
    window.confirm = lambda text: True
    assert window.open_session(str(path))
    again = panel.comparison
    assert [(r["method"], r["rmse"]) for r in again.rows] == rows
    assert all(np.array_equal(again.members[k], members[k]) for k in members)
    assert panel.table.rowCount() == 2 and len(panel.plots.images) == 1 + 2 * 2
