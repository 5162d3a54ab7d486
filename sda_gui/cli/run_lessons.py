"""``lessons``: the built-in classroom lessons, one line each, or a check of a lesson file.

The lessons are TOML files in ``sda_gui/lessons/`` (see that package). ``--check
FILE.toml`` loads a teacher's own file with the same checks the app makes and
prints ``ok`` or the one-line problem naming its line (exit 2).
"""

from __future__ import annotations

__all__ = ["cmd_lessons", "lesson_lines"]


def lesson_lines(lessons) -> list[str]:
    """``N  id  title — summary``, the ids padded to one column."""
    width = max((len(x.id) for x in lessons), default=0)
    return [f"{i:>2}  {x.id:<{width}}  {x.title} — {x.summary}" for i, x in enumerate(lessons, start=1)]


def cmd_lessons(args, plan, say):
    from sda_gui.lessons import builtin_lessons, load_lesson

    if args.check is not None:
        lesson = load_lesson(args.check)   # a LessonError is one line, exit 2
        say.result(f"ok: {lesson.id} — {lesson.title} ({len(lesson.steps)} steps)")
        return 0
    for line in lesson_lines(builtin_lessons()):
        say.result(line)
    say.info("open one with: python main.py --lesson ID")
    return 0
