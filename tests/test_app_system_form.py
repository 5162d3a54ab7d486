"""The parameter form keeps a parameter's exact value while the user leaves it alone."""

import pytest

pytest.importorskip("PySide6")

from sda_gui.app.system_form import ParamsForm  # noqa: E402


def test_an_untouched_field_keeps_its_exact_default(qtbot):
    form = ParamsForm()
    qtbot.addWidget(form)
    form.rebuild("lorenz63")
    # the box shows 2.6667; simulating with that would give another truth than the CLI's
    assert form.fields["beta"].value() == pytest.approx(2.6667)
    assert form.values()["beta"] == 8.0 / 3.0


def test_an_edited_field_gives_what_the_user_typed(qtbot):
    form = ParamsForm()
    qtbot.addWidget(form)
    form.rebuild("lorenz63")
    form.fields["beta"].setValue(2.5)
    assert form.values()["beta"] == 2.5
    form.set_param("beta", 8.0 / 3.0)
    assert form.values()["beta"] == 8.0 / 3.0
