"""``bench assimilate`` prints CPU seconds per step, the chunking, and on request a profile.

The numbers themselves are not checked (they depend on the machine); the lines, the
plain-path switch and the refusal of a bad budget are.
"""

from __future__ import annotations

import pytest

from sda_gui.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["bench", "assimilate", "--system", "lorenz63", "--samples", "4", "--length", "32", "--steps", "2",
        "--corrections", "1", "--device", "cpu", "--threads", "1"]


def test_bench_assimilate_reports_cpu_time_and_chunks(capsys):
    assert main(TINY + ["--memory-budget", "1"]) == 0
    out = capsys.readouterr().out
    assert "CPU-s/step" in out and "C=1:" in out
    # a 1 MiB budget over ~10 KiB per window of the shipped network: about a hundred windows per chunk
    chunk = int(out.split(" windows per chunk")[0].rsplit(", ", 1)[-1])
    assert 50 < chunk < 200


def test_bench_assimilate_plain_path_and_profile(capsys):
    from sda_gui.core.diffusion.networks import ResMLP

    assert main(TINY + ["--no-fast-paths", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "unoptimised path, one batch" in out
    assert "aten::addmm" in out and "Self CPU" in out          # the profiler's table by operator
    assert ResMLP.fuse_shared_time is True                      # the switch is undone afterwards


def test_a_bad_memory_budget_is_one_line(capsys):
    assert main(TINY + ["--memory-budget", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --memory-budget must be > 0 MiB, got 0"]
