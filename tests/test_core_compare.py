"""Several methods on one problem, scored and reported (core/compare.py)."""

from __future__ import annotations

import csv
import math

import pytest

from sda_gui.core.compare import compare, members_by_method, write_compare_report
from sda_gui.core.methods import Cancelled, MethodError
from sda_gui.core.observation import ObservationError, every_nth_state_mask, synthesize
from sda_gui.core.systems import make_system

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = {"bpf": {"particles": 256}, "4dvar": {"iterations": 3, "stages": 1}}


@pytest.fixture(scope="module")
def problem():
    system = make_system("lorenz63")
    length = 12
    truth = system.simulate(1, length, seed=7)[0].numpy()
    mask = every_nth_state_mask(length, (3,), 3, variables=[0])
    return system, synthesize(truth, mask, 0.5, seed=8), truth


def test_compare_writes_a_table_a_csv_and_a_figure(problem, tmp_path):
    system, obs, truth = problem
    seen = []
    rows = compare(system, obs, truth, ["bpf", "4dvar", "sda"], 6, SETTINGS, seed=1,
                   progress=lambda method, done, total: seen.append((method, done, total)))
    assert [r.method for r in rows] == ["bpf", "4dvar", "sda"]
    bpf, var, sda = rows
    for r in (bpf, var):
        assert r.ok and r.members.shape == (6, 12, 3)
        assert 0 < r.rmse < 20 and r.spread >= 0 and r.crps > 0 and r.seconds > 0 and r.device == "cpu"
        assert 0 <= r.coverage_50 <= r.coverage_90 <= 1 and math.isfinite(r.rank_flatness)
        assert sum(r.rank_counts) == truth.size and len(r.rank_counts) == 7
    # SDA without a model cannot run: a row holding the reason, not a crash
    assert not sda.ok and "score model" in sda.error and sda.members is None and math.isnan(sda.rmse)
    assert {m for m, _, _ in seen} == {"bpf", "4dvar"}
    assert ("bpf", 12, 12) in seen

    members = members_by_method(rows)
    assert set(members) == {"bpf", "4dvar"}
    paths = write_compare_report(rows, members, truth, obs, tmp_path / "out", variable_names=system.variable_names)
    table = open(paths["markdown"], encoding="utf-8").read().splitlines()
    assert table[0].startswith("| method | members | RMSE |") and "error" in table[0]
    assert len([line for line in table if line.startswith("| ")]) == 5  # header, rule, 3 rows
    assert f"{bpf.rmse:.3f}" in table[2] and "needs a trained score model" in table[4]
    with open(paths["csv"], newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    assert [r["method"] for r in records] == ["bpf", "4dvar", "sda"]
    assert float(records[1]["rmse"]) == pytest.approx(var.rmse) and records[2]["error"]
    png = open(paths["png"], "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["compare.csv", "compare.md", "compare.png"]


def test_compare_checks_its_input_before_running(problem):
    system, obs, truth = problem
    with pytest.raises(MethodError, match="unknown method"):
        compare(system, obs, truth, ["bpf", "nope"], 4)
    with pytest.raises(ObservationError, match="truth"):
        compare(system, obs, truth[:5], ["bpf"], 4)
    with pytest.raises(MethodError, match="members"):
        compare(system, obs, truth, ["bpf"], 0)
    with pytest.raises(Cancelled):
        compare(system, obs, truth, ["bpf", "4dvar"], 4, SETTINGS, should_stop=lambda: True)
    # a bad setting is that method's error row; the others still run
    rows = compare(system, obs, truth, ["4dvar", "bpf"], 4, {"4dvar": {"stages": 0}, "bpf": {"particles": 128}})
    assert "stages" in rows[0].error and rows[1].ok
