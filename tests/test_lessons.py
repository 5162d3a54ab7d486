"""Lessons as data: the built-in files load, a malformed file is one message naming its line,
the rules (patterns, checks) mean what they say, and ``python -m sda_gui lessons`` lists them."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sda_gui.lessons import LessonError, builtin_lessons, find_lesson, load_lesson, parse_lesson
from sda_gui.lessons.rules import evaluate_check, pattern_mask

ROOT = Path(__file__).resolve().parents[1]

GOOD = '''id = "mine"
title = "My lesson"
summary = "One line."
introduction = """
Read this aloud.
"""

[scenario]
system = "lorenz63"
length = 32
model = "lorenz63.pt"
steps = 8

[scenario.pattern]
every_states = 4

[[steps]]
text = "First."
action = "assimilate"

[[steps]]
text = "Second."
action = { set = { corrections = 2 }, run = "assimilate" }
question = "Why?"
answer = "Because."
check = { residual_within = 0.2 }
'''


def _error(text: str) -> LessonError:
    with pytest.raises(LessonError) as info:
        parse_lesson(text, "bad.toml")
    return info.value


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_every_builtin_lesson_loads_with_its_parts():
    lessons = builtin_lessons()
    assert [x.id for x in lessons] == ["posterior", "noise-to-trajectory", "markov-blanket", "langevin",
                                       "sparse-dense", "sda-vs-classical", "zero-shot-operators",
                                       "kolmogorov-turbulence"]
    for lesson in lessons:
        assert lesson.introduction and "\n" not in lesson.summary
        assert 3 <= len(lesson.steps) <= 6, lesson.id
        assert any(s.question and s.answer for s in lesson.steps), lesson.id
        assert any(s.check for s in lesson.steps), lesson.id
        assert lesson.scenario.model_path is not None and lesson.scenario.model_path.is_file()
    compare = find_lesson("sda-vs-classical")
    assert set(compare.scenario.methods) == {"sda", "enkf", "bpf"} and "compare" in compare.scenario.views
    assert "scrubber" in find_lesson("2").scenario.views and find_lesson("2").scenario.record == 2


def test_find_lesson_by_id_or_number_and_unknown_ids():
    assert find_lesson("posterior").id == find_lesson("1").id == "posterior"
    with pytest.raises(LessonError, match="no lesson 'nope'.*posterior"):
        find_lesson("nope")


def test_a_good_file_and_its_normalised_actions():
    lesson = parse_lesson(GOOD, "mine.toml")
    assert lesson.id == "mine" and len(lesson.steps) == 2
    assert lesson.steps[0].action == {"run": "assimilate"}
    assert lesson.steps[1].action == {"set": {"corrections": 2}, "run": "assimilate"}
    assert lesson.steps[1].check == ("residual_within", 0.2)
    assert lesson.scenario.sampler == {"steps": 8} and lesson.scenario.pattern == {"every_states": 4}


def test_a_truncated_file_names_its_line():
    cut = GOOD[:GOOD.index("Read this aloud.")]
    err = _error(cut)
    assert "bad.toml, line" in str(err) and "not valid TOML" in str(err) and "\n" not in str(err)
    assert err.line == cut.rstrip("\n").count("\n") + 1
    err = _error(GOOD.replace('check = { residual_within = 0.2 }', 'check = { residual_within = 0.2'))
    assert err.line == _line_of(GOOD, "check =")


@pytest.mark.parametrize("old, new, needle, words", [
    ('length = 32', 'length = "long"', "length =", "must be a whole number"),
    ('steps = 8', 'steps = 0', "steps = 0", "must be ≥ 1"),
    ('action = "assimilate"', 'action = "dance"', "action =", "unknown action 'dance'"),
    ('check = { residual_within = 0.2 }', 'check = { rmse_under = 2 }', "check =", "unknown check 'rmse_under'"),
    ('check = { residual_within = 0.2 }', 'check = { method_beats = ["sda", "magic"] }', "check =",
     "unknown method 'magic'"),
    ('corrections = 2 }', 'corrections = "two" }', "corrections =", "must be a whole number"),
    ('every_states = 4', 'every_state = 4', "every_state =", "unknown key 'every_state'"),
    ('model = "lorenz63.pt"', 'model = "missing.pt"', "model =", "neither a shipped model"),
    ('system = "lorenz63"', 'system = "lorenz84"', "system =", "must be one of"),
])
def test_schema_errors_name_the_line_of_the_key(old, new, needle, words):
    text = GOOD.replace(old, new)
    assert new in text
    err = _error(text)
    assert words in str(err), str(err)
    assert err.line == _line_of(text, needle), str(err)
    assert str(err).startswith(f"bad.toml, line {err.line}: ")


def test_several_problems_report_the_first_and_count_the_rest():
    text = GOOD.replace('length = 32', 'length = -1').replace('action = "assimilate"', 'action = "dance"')
    err = _error(text)
    assert err.line == _line_of(text, "length =") and "and 1 more problem" in str(err)


def test_missing_parts_and_answers_without_questions():
    assert "'summary' is required" in str(_error(GOOD.replace('summary = "One line."\n', "")))
    text = GOOD.replace('question = "Why?"\n', "")
    err = _error(text)
    assert "an answer needs a question" in str(err) and err.line == _line_of(text, "answer =")
    assert "at least one [[steps]]" in str(_error(GOOD[:GOOD.index("[[steps]]")]))


def test_load_lesson_reads_files_and_resolves_models_beside_them(tmp_path):
    model = tmp_path / "mine.pt"
    model.write_bytes(b"not read here")
    path = tmp_path / "lesson.toml"
    path.write_text(GOOD.replace('"lorenz63.pt"', '"mine.pt"'), encoding="utf-8")
    lesson = load_lesson(path)
    assert lesson.path == path and lesson.scenario.model_path == model.resolve()
    (tmp_path / "latin.toml").write_bytes(b'id = "x"\ntitle = "\xe9"\n')
    with pytest.raises(LessonError, match="latin.toml, line 2: not UTF-8"):
        load_lesson(tmp_path / "latin.toml")
    with pytest.raises(LessonError, match="not found"):
        load_lesson(tmp_path / "none.toml")


def test_pattern_rules():
    every = pattern_mask({"every_states": 4, "variables": [0]}, 16, (3,))
    assert every.shape == (16, 3) and every.sum() == 4 and every[::4, 0].all()
    only = pattern_mask({"states": [5]}, 8, (3,))
    assert only.sum() == 3 and only[5].all()
    field = pattern_mask({"every_variables": 2}, 2, (2, 4, 4))
    assert field.sum() == 2 * 2 * 2 * 2 and field[:, :, ::2, ::2].all()
    rnd = pattern_mask({"density": 0.25, "seed": 3}, 64, (40,))
    expected = np.random.default_rng(3).random((64, 40)) < 0.25
    assert np.array_equal(rnd, expected)


def test_checks_on_metrics_and_comparisons():
    m = {"rmse": 0.8, "spread": 0.9, "residual_std": 1.1, "obs_std": 1.0}
    assert evaluate_check(("residual_within", 0.2), m).passed
    r = evaluate_check(("residual_within", 0.05), m)
    assert r.passed is False and math.isclose(r.value, 1.1) and r.mark == "✗" and "1.10 σ_y" in r.text
    assert evaluate_check(("rmse_below", 1.0), m).passed and not evaluate_check(("rmse_above", 1.0), m).passed
    assert evaluate_check(("spread_ratio_between", (0.5, 2.0)), m).passed
    assert not evaluate_check(("spread_ratio_between", (1.5, 2.0)), m).passed
    assert evaluate_check(("spread_above", 0.5), m).passed and not evaluate_check(("spread_below", 0.5), m).passed
    assert evaluate_check(("rmse_below", 1.0), None).passed is None
    rows = [{"method": "sda", "rmse": 0.5}, {"method": "enkf", "rmse": 0.9}, {"method": "bpf", "rmse": 0.4}]
    assert evaluate_check(("method_beats", ("sda", "enkf")), rows=rows).passed
    assert evaluate_check(("method_beats", ("sda", "bpf")), rows=rows).passed is False
    assert evaluate_check(("method_beats", ("sda", "letkf")), rows=rows).passed is None


def test_cli_lists_the_eight_lessons_and_checks_a_file(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sda_gui", "lessons"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 8 and lines[0].split()[:2] == ["1", "posterior"]
    assert "What a posterior is — " in lines[0]
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("steps = 8", "steps = 0"), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "sda_gui", "lessons", "--check", str(bad)], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: bad.toml, line {_line_of(GOOD, 'steps = 8')}: "
                                               "scenario.steps: must be ≥ 1"]


@pytest.mark.slow
@pytest.mark.parametrize("lesson_id", [x.id for x in builtin_lessons()])
def test_every_check_of_every_lesson_passes_on_the_shipped_models(lesson_id):
    from sda_gui.lessons.headless import run_lesson

    results = run_lesson(find_lesson(lesson_id))
    assert results and all(r.passed for _, r in results), [r.text for _, r in results]


def test_a_step_model_must_be_a_shipped_model_or_a_file_and_names_its_line():
    text = GOOD.replace('action = "assimilate"', 'action = { model = "lorenz63_k9.pt", run = "assimilate" }')
    err = _error(text)
    assert "steps[0].action.model: model 'lorenz63_k9.pt' is neither a shipped model" in str(err), str(err)
    assert "lorenz63_k1.pt" in str(err) and "\n" not in str(err)
    assert err.line == _line_of(text, "lorenz63_k9.pt") and str(err).startswith(f"bad.toml, line {err.line}: ")
    text = GOOD.replace('action = "assimilate"', 'action = { model = 3 }')
    err = _error(text)
    assert "steps[0].action.model: must be non-empty text" in str(err) and err.line == _line_of(text, "model = 3")
    one = 'action = { model = "lorenz63_k1.pt", run = "assimilate" }'
    good = parse_lesson(GOOD.replace('action = "assimilate"', one), "mine.toml")
    assert good.steps[0].action["model"].name == "lorenz63_k1.pt" and good.steps[0].action["model"].is_file()


def test_lesson_3_runs_one_case_with_the_k_1_2_3_models():
    from sda_gui.core.diffusion.checkpoint import read_checkpoint

    lesson = find_lesson("markov-blanket")
    by_k = [s for s in lesson.steps if "model" in s.action]
    assert [s.action["model"].name for s in by_k[:3]] == ["lorenz63_k1.pt", "lorenz63_k2.pt", "lorenz63_k3.pt"]
    for k, step in enumerate(by_k[:3], start=1):
        ck = read_checkpoint(step.action["model"])
        assert ck["k"] == k and ck["system"]["name"] == "lorenz63" and ck["arch"] == {"name": "resmlp", "width": 128,
                                                                                       "depth": 4}
        assert step.action["run"] == "assimilate" and step.question and step.answer and step.check is not None
    # the same case: the second and third steps change the model only
    assert all(set(s.action) == {"model", "run"} for s in by_k[1:3])
    assert not any("train" in s.text.lower() and "--k" in s.text for s in lesson.steps)


def test_every_model_a_lesson_names_fits_its_system():
    from sda_gui.core.diffusion.checkpoint import read_checkpoint

    for lesson in builtin_lessons():
        models = [lesson.scenario.model_path] + [s.action["model"] for s in lesson.steps if "model" in s.action]
        for path in models:
            assert read_checkpoint(path)["system"]["name"] == lesson.scenario.system, (lesson.id, path.name)


def _lesson_3_up_to(step_no: int):
    """Lesson 3 performed headless up to step ``step_no`` (1-based); the run and that step."""
    from sda_gui.lessons.headless import HeadlessRun

    lesson = find_lesson("markov-blanket")
    run = HeadlessRun(lesson)
    for step in lesson.steps[:step_no]:
        run.perform(step.action)
    return run, lesson.steps[step_no - 1]


def test_lesson_3_k1_step_passes_its_check_on_the_shipped_model(one_torch_thread):
    """The fast one: lesson 3's first step (k = 1) exactly as the lesson sets it."""
    run, step = _lesson_3_up_to(1)
    assert run.model.k == 1
    result = evaluate_check(step.check, run.metrics)
    assert result.passed, result.text


@pytest.mark.slow
def test_lesson_3_a_wider_blanket_fits_the_truth_better(one_torch_thread):
    """k = 1, 2, 3 on the same case, as the lesson runs them: each check passes and the RMSE falls with k."""
    from sda_gui.lessons.headless import HeadlessRun

    lesson = find_lesson("markov-blanket")
    run = HeadlessRun(lesson)
    rmse = []
    for step in lesson.steps[:3]:
        run.perform(step.action)
        assert evaluate_check(step.check, run.metrics).passed, (step.title, run.metrics)
        rmse.append(run.metrics["rmse"])
    assert rmse[0] > rmse[1] and rmse[0] > rmse[2], rmse


def test_headless_command_refuses_an_unknown_lesson_in_one_line(capsys):
    """A wrong id or option answers in one line with exit 2, before torch or any lesson runs."""
    from sda_gui.lessons.headless import main

    assert main(["no-such-lesson"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no lesson 'no-such-lesson'") and "\n" not in err and "posterior" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["--bogus"])
    assert exit_info.value.code == 2
