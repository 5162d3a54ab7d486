"""``--system-file`` on ``bench`` and ``evaluate``: a plugin file is loaded first, as on every other
subcommand; a missing or broken one is one ``error: …`` line and exit status 2, before any work."""

from __future__ import annotations

import pytest

from sda_gui.cli import main


@pytest.mark.parametrize("command", [["bench", "assimilate"], ["evaluate"]])
@pytest.mark.parametrize("kind", ["missing", "broken"])
def test_a_bad_system_file_exits_2_with_one_line(command, kind, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mine.py"
    if kind == "broken":
        path.write_text("raise RuntimeError('first line\\nsecond line')\n")
    rc = main([*command, "--system-file", str(path), "--threads", "1"])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: --system-file") and "mine.py" in lines[0]
    assert "second line" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["mine.py"] if kind == "broken" else [])


def test_a_system_file_registers_its_system_for_bench(restore_registries):
    from pathlib import Path

    from sda_gui.cli.parser import build_parser
    from sda_gui.cli.validate import validate

    example = Path(__file__).resolve().parents[1] / "examples" / "lorenz84.py"
    args = build_parser().parse_args(["bench", "train", "--system", "lorenz84", "--system-file", str(example)])
    assert "lorenz84" in validate(args).plugins
