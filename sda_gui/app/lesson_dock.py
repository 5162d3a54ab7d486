"""The lesson dock and the lesson browser.

``LessonDock`` shows one lesson a page at a time: the introduction first, then each
step — its Markdown text (a ``QTextBrowser``), *Back* / *Next*, *Do it* (performs the
step's action through the host), *Show answer* (reveals the answer under the
question) and the step's check, evaluated on the host's last result: ✓ or ✗ with
the measured value, "…" until there is something to measure. It talks to the app
only through a ``LessonHost`` (``lesson_runner``): ``apply_scenario``, ``perform``,
``last_metrics``, ``last_comparison_rows``; ``refresh_check()`` re-evaluates (the
window calls it when a result or a comparison arrives).

``LessonBrowser`` lists the built-in lessons (title, summary) and opens one, or a
teacher's own file (*Open lesson file…*); a malformed file is one line naming its
line, shown in the dialog. ``set_text_scale`` enlarges the dock's text (presenter mode).
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QPushButton, QTextBrowser, QVBoxLayout, QWidget)

from sda_gui.lessons import Lesson, LessonError, builtin_lessons, load_lesson
from sda_gui.lessons.rules import CheckResult, describe_check, evaluate_check

__all__ = ["LessonDock", "LessonBrowser"]

CHECK_COLORS = {True: "#1b7f3b", False: "#b00020", None: "#555555"}


class LessonDock(QDockWidget):
    """One lesson, page by page (page 0: the introduction; page i: step i)."""

    pageChanged = Signal(int)

    def __init__(self, host, parent=None):
        super().__init__("Lesson", parent)
        self.setObjectName("lesson-dock")
        self.host = host
        self.lesson: Optional[Lesson] = None
        self.page = 0
        self.last_check: Optional[CheckResult] = None
        self._scale = 1.0

        self.title = QLabel()
        self.title.setWordWrap(True)
        self.counter = QLabel()
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(True)
        self.question = QLabel()
        self.question.setWordWrap(True)
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.answer.setVisible(False)
        self.check_label = QLabel()
        self.check_label.setWordWrap(True)
        self.back_button = QPushButton("Back")
        self.next_button = QPushButton("Next")
        self.do_button = QPushButton("Do it")
        self.do_button.setToolTip("Perform this step's action in the app")
        self.answer_button = QPushButton("Show answer")
        buttons = QHBoxLayout()
        for b in (self.back_button, self.do_button, self.answer_button, self.next_button):
            buttons.addWidget(b)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.title)
        layout.addWidget(self.counter)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.question)
        layout.addWidget(self.answer)
        layout.addWidget(self.check_label)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.setMinimumWidth(260)

        self.back_button.clicked.connect(self.back)
        self.next_button.clicked.connect(self.next)
        self.do_button.clicked.connect(self.do_it)
        self.answer_button.clicked.connect(self.show_answer)
        self._restyle()
        self.show_page(0)

    # lesson -----------------------------------------------------------------------------
    def set_lesson(self, lesson: Lesson, apply: bool = True):
        """Shows ``lesson`` from its introduction; ``apply`` sets its scenario up in the app."""
        self.lesson = lesson
        self.setWindowTitle(f"Lesson: {lesson.title}")
        if apply:
            self.host.apply_scenario(lesson.scenario)
        self.show_page(0)

    @property
    def n_pages(self) -> int:
        return 0 if self.lesson is None else 1 + len(self.lesson.steps)

    @property
    def step(self):
        return None if self.lesson is None or self.page == 0 else self.lesson.steps[self.page - 1]

    def show_page(self, page: int):
        if self.lesson is None:
            self.title.setText("<b>No lesson open</b>")
            self.counter.setText("Help › Lessons… lists the lessons.")
            self.text.setMarkdown("")
            for w in (self.back_button, self.next_button, self.do_button, self.answer_button):
                w.setEnabled(False)
            self.question.setVisible(False)
            self.check_label.setVisible(False)
            return
        self.page = int(min(max(page, 0), self.n_pages - 1))
        step = self.step
        self.title.setText(f"<b>{self.lesson.title}</b>")
        if step is None:
            self.counter.setText(f"Introduction · {len(self.lesson.steps)} steps")
            self.text.setMarkdown(self.lesson.introduction)
        else:
            name = f" — {step.title}" if step.title else ""
            self.counter.setText(f"Step {self.page} of {len(self.lesson.steps)}{name}")
            self.text.setMarkdown(step.text)
        has_q = step is not None and bool(step.question)
        self.question.setVisible(has_q)
        self.question.setText(f"<b>Question.</b> {step.question}" if has_q else "")
        self.answer.setVisible(False)
        self.answer.setText(f"<b>Answer.</b> {step.answer}" if has_q and step.answer else "")
        self.answer_button.setEnabled(has_q and bool(step.answer))
        self.answer_button.setText("Show answer")
        self.do_button.setEnabled(step is not None and bool(step.action))
        self.back_button.setEnabled(self.page > 0)
        self.next_button.setEnabled(self.page < self.n_pages - 1)
        self.refresh_check()
        self.pageChanged.emit(self.page)

    def next(self):
        self.show_page(self.page + 1)

    def back(self):
        self.show_page(self.page - 1)

    def do_it(self):
        step = self.step
        if step is not None and step.action:
            self.host.perform(step.action)
            self.refresh_check()

    def show_answer(self):
        shown = not self.answer.isVisible()
        self.answer.setVisible(shown and bool(self.answer.text()))
        self.answer_button.setText("Hide answer" if shown else "Show answer")

    @property
    def answer_shown(self) -> bool:
        return not self.answer.isHidden()

    def refresh_check(self) -> Optional[CheckResult]:
        """Evaluates the step's check on the host's last result and shows ✓/✗ with the value."""
        step = self.step
        if step is None or step.check is None:
            self.last_check = None
            self.check_label.setVisible(False)
            return None
        result = evaluate_check(step.check, self.host.last_metrics(), self.host.last_comparison_rows())
        self.last_check = result
        color = CHECK_COLORS[result.passed]
        self.check_label.setText(f"<span style='color:{color}'><b>{result.mark}</b> Check — {result.text}</span>"
                                 if result.passed is not None else
                                 f"<span style='color:{color}'>Check — {describe_check(step.check)}: "
                                 f"{result.text.split(': ', 1)[-1]}</span>")
        self.check_label.setVisible(True)
        return result

    # presenter --------------------------------------------------------------------------
    def set_text_scale(self, scale: float):
        self._scale = float(scale)
        self._restyle()

    def _restyle(self):
        base = self.font().pointSizeF()
        if base <= 0:
            base = 10.0
        size = base * self._scale
        self.text.setStyleSheet(f"QTextBrowser {{ font-size: {size * 1.15:.1f}pt; }}")
        for w in (self.question, self.answer, self.check_label, self.counter):
            w.setStyleSheet(f"font-size: {size:.1f}pt;")
        self.title.setStyleSheet(f"font-size: {size * 1.3:.1f}pt;")


class LessonBrowser(QDialog):
    """The built-in lessons, and *Open lesson file…* for a teacher's own."""

    def __init__(self, parent=None, lessons: Optional[list] = None):
        super().__init__(parent)
        self.setWindowTitle("Lessons")
        self.resize(640, 460)
        self.lessons = list(lessons) if lessons is not None else builtin_lessons()
        self.chosen: Optional[Lesson] = None
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        for i, lesson in enumerate(self.lessons, start=1):
            item = QListWidgetItem(f"{i}. {lesson.title}\n    {lesson.summary}")
            item.setData(Qt.ItemDataRole.UserRole, lesson.id)
            item.setToolTip(f"id: {lesson.id} · {len(lesson.steps)} steps")
            self.list.addItem(item)
        if self.lessons:
            self.list.setCurrentRow(0)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setVisible(False)
        self.file_button = QPushButton("Open lesson file…")
        self.file_button.setToolTip("Open a lesson written as a TOML file (see the built-in ones for the format)")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton(self.file_button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Lessons</b> — one concept each, with something to click and a question."))
        layout.addWidget(self.list, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        buttons.accepted.connect(self.open_selected)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _: self.open_selected())
        self.file_button.clicked.connect(lambda: self.open_file())

    def open_selected(self) -> Optional[Lesson]:
        row = self.list.currentRow()
        if 0 <= row < len(self.lessons):
            self.chosen = self.lessons[row]
            self.accept()
        return self.chosen

    def open_file(self, path: Optional[str] = None) -> Optional[Lesson]:
        """Loads a lesson file (asks when ``path`` is None); a problem is shown here in one line."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open lesson", "", "Lessons (*.toml)")
            if not path:
                return None
        try:
            self.chosen = load_lesson(path)
        except LessonError as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
            return None
        self.accept()
        return self.chosen
