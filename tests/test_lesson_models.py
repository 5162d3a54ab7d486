"""A lesson step that changes the model, in the app: lesson 3 loads its k = 1 model and its check
is evaluated on that model's result; a shipped model is selected, not listed twice; a model
that cannot be used stops the step before it runs."""

from sda_gui.lessons import find_lesson


def _entries(combo, name):
    return [combo.itemData(i) for i in range(combo.count()) if str(combo.itemData(i)).endswith(name)]


def test_lesson_3_steps_change_the_model_and_a_bad_one_stops_the_step(qtbot, lesson_window, one_torch_thread):
    from sda_gui.core.diffusion.checkpoint import RESOURCES

    w, runner, dock = lesson_window
    with qtbot.waitSignal(runner.ready, timeout=120_000):
        dock.set_lesson(find_lesson("markov-blanket"))
    assert w.state.model_path.endswith("lorenz63_k3.pt") and w.state.model.k == 3
    runner.perform({"set": {"samples": 4, "steps": 16}})   # cheaper than the lesson's 16 samples, 64 steps
    dock.next()
    with qtbot.waitSignal(w.assimilation_panel.runEnded, timeout=300_000):
        dock.do_it()
    assert w.state.model_path == str(RESOURCES / "lorenz63_k1.pt") and w.state.model.k == 1
    picker = w.assimilation_panel.picker
    assert len(_entries(picker.model_combo, "lorenz63_k1.pt")) == 1 and w.state.model_path not in picker.extra_models
    assert dock.last_check is not None and dock.last_check.passed, dock.check_label.text()

    # a model of another system cannot be used: the step is not run and the k = 1 model stays
    messages = []
    runner.message.connect(messages.append)
    before = w.state.results
    runner.perform({"model": RESOURCES / "lorenz96.pt", "run": "assimilate"})
    assert not w.assimilation_panel.runner.running and w.state.results is before
    assert w.state.model.k == 1 and messages == ["lesson: could not use the model lorenz96.pt; the step was not run"]
