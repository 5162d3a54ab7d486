"""SDA in the classical benchmark table (``bench_classical --methods sda``) on a tiny case."""

from types import SimpleNamespace

import numpy as np
import pytest

from sda_gui.bench_classical import PROBLEMS, accuracy_table, make_problem, member_scores, run
from sda_gui.bench_sda import model_for, models_from
from sda_gui.core import calibration
from sda_gui.core.diffusion.checkpoint import default_model_path
from sda_gui.core.methods import run_method

TINY = {"steps": 2, "corrections": 0}


def test_sda_row_is_scored_on_the_classical_windows():
    rows = accuracy_table(["l63-x8-64"], windows=2, methods=("sda",), samples=4, overrides={"sda": TINY},
                          echo=lambda s: None)
    (row,) = rows
    assert row["method"] == "sda" and row["members"] == 4 and row["model"] == "lorenz63.pt"
    assert row["settings"]["steps"] == 2 and row["settings"]["corrections"] == 0
    assert "dapper_rmse" not in row
    # the same window, seed and settings by hand give the same scores
    model = model_for("lorenz63")
    per_window = []
    for w in range(2):
        system, truth, obs = make_problem(PROBLEMS["l63-x8-64"], w)
        members = run_method("sda", system, obs, 4, TINY, model=model, seed=w).members.numpy()
        per_window.append(member_scores(members, truth, system))
    assert row["rmse_windows"] == pytest.approx([s["rmse"] for s in per_window])
    assert row["spread_skill"] == pytest.approx(np.mean([s["spread_skill"] for s in per_window]))
    assert row["rank_flatness"] == pytest.approx(np.mean([s["rank_flatness"] for s in per_window]))
    assert row["step_residual"] == pytest.approx(np.mean([s["step_residual"] for s in per_window]))
    # the truth's exchangeability p-value per window, and Fisher's combination of them
    assert row["rank_p_windows"] == pytest.approx([s["rank_p"] for s in per_window])
    assert row["rank_p"] == pytest.approx(calibration.combine_p_values([s["rank_p"] for s in per_window]))
    assert row["rank_reference"] == pytest.approx(np.mean([s["rank_reference"] for s in per_window]))


def test_step_residual_is_the_model_error_the_members_carry():
    system, truth, _ = make_problem(PROBLEMS["l96-dense-32"], 0)     # deterministic transition
    exact = member_scores(np.stack([truth, truth]), truth, system)["step_residual"]
    noisy = truth + np.random.default_rng(0).normal(scale=0.1, size=(2, *truth.shape))
    assert exact < 1e-4                                  # the truth follows f (float32 rounding)
    assert member_scores(noisy, truth, system)["step_residual"] > 0.1
    assert "step_residual" not in member_scores(noisy, truth)


def test_member_scores_carry_the_calibration_scores():
    gen = np.random.default_rng(0)
    truth = gen.normal(size=(5, 3))
    members = truth + gen.normal(size=(16, 5, 3))
    s = member_scores(members, truth)
    assert s["spread_skill"] == pytest.approx(calibration.spread_skill(members, truth))
    assert s["rank_flatness"] == pytest.approx(calibration.rank_flatness(calibration.rank_histogram(members, truth)))
    assert (s["rank_p"], s["rank_reference"]) == calibration.rank_exchangeability(members, truth)


def test_command_prints_the_sda_row(capsys):
    out = run(["--methods", "sda", "--problems", "l63-x8-64", "--windows", "1", "--samples", "3", "--steps", "2",
               "--corrections", "0", "--gamma", "0.1", "--model", str(default_model_path("lorenz63", "cpu"))])
    text = capsys.readouterr().out
    assert "spread/RMSE" in text and "rank χ²/dof" in text and "rank p per window:" in text
    assert text.count("| l63-x8-64") == 1 and "| sda" in text
    assert out["table"][0]["settings"]["gamma"] == 0.1
    assert f"l63-x8-64 sda RMSE per window: {out['table'][0]['rmse']:.3f}" in text
    assert "enkf_s" not in out          # --methods skips the EnKF/LETKF timing


@pytest.mark.parametrize("args", [["--methods", "sda", "--problems", "nope"], ["--methods", "sda,nope"],
                                  ["--methods", "sda", "--tau", "-1"], ["--methods", "sda", "--guidance", "x"]])
def test_bad_input_exits_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        run(args + ["--problems", "l63-x8-64"] if "--problems" not in args else args)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_two_models_for_one_system_are_refused():
    path = str(default_model_path("lorenz63", "cpu"))
    with pytest.raises(ValueError, match="two models"):
        models_from([path, path])


def test_lorenz_systems_default_to_tau_1_in_the_method_and_the_app():
    from sda_gui.app.sampler_config import system_defaults
    from sda_gui.core.methods import get_method, settings_from
    from sda_gui.core.systems import make_system

    sda = get_method("sda")
    l63 = settings_from(sda, make_system("lorenz63"))
    assert l63.tau == 1.0 and (l63.gamma, l63.corrections, l63.guidance) == (1e-2, 1, "sda")
    assert settings_from(sda, make_system("lorenz96")).tau == 1.0
    assert settings_from(sda, SimpleNamespace(name="kolmogorov")).tau == sda.Settings().tau == 0.25
    assert settings_from(sda, make_system("lorenz63"), {"tau": 0.5}).tau == 0.5   # an override still wins
    assert system_defaults("lorenz63")["tau"] == system_defaults("lorenz96")["tau"] == l63.tau


def test_methods_without_a_dapper_counterpart_get_no_dapper_column(monkeypatch):
    """The particle filter and 4D-Var have no DAPPER counterpart: the table scores them alone
    (it used to ask DAPPER for them and stop with a traceback)."""
    import sda_gui.bench_classical as bc

    asked = []

    def fake_dapper(name, system, truth, obs, initial, settings, seed=1):
        asked.append(name)
        return np.zeros_like(truth), np.ones(len(truth)), 0.0

    monkeypatch.setattr(bc, "dapper_available", lambda: True)
    monkeypatch.setattr(bc, "dapper_assimilate", fake_dapper)
    rows = accuracy_table(["l63-x8-64"], windows=1, members=8, methods=("bpf", "enkf"), echo=lambda s: None)
    assert [r["method"] for r in rows] == ["bpf", "enkf"]
    assert asked == ["enkf"]
    assert "dapper_rmse" not in rows[0] and "dapper_rmse" in rows[1]
