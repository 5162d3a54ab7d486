"""The models in ``sda_gui/resources/models``: each loads, fits its system and was trained to the end."""

from __future__ import annotations

import math

import pytest

from sda_gui.core.diffusion.checkpoint import (RESOURCES, check_model_for_system, default_model_path, load_checkpoint,
                                               read_checkpoint, shipped_model_paths)
from sda_gui.core.systems import make_system

SHIPPED = sorted(p.name for p in RESOURCES.glob("*.pt"))


def test_every_system_ships_a_default_model():
    for name in ("lorenz63", "lorenz96", "kolmogorov"):
        assert default_model_path(name, "cpu").exists()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_fits_its_system_and_finished_training(name):
    path = RESOURCES / name
    info = read_checkpoint(path)["training"]
    model = load_checkpoint(path, "cpu")
    system = make_system(model.system["name"], **model.system.get("params", {}))
    check_model_for_system(model, system)
    assert path.stat().st_size <= 16 * 2 ** 20
    # a time-limited run may stop a little short of its schedule; untrained weights may not ship
    assert info["steps_done"] >= 0.9 * info["steps"]
    # the last recorded loss (validation where the run ended on a validation step); a fresh
    # network starts near 1 (ε loss, or the clean-window loss of a preconditioned one)
    last = [v for v in (info["final_val_loss"] or []) + (info["final_train_loss"] or []) if v is not None][0]
    assert math.isfinite(last) and last < 0.5


def test_kolmogorov_default_is_the_gpu_model_on_cuda_only():
    assert default_model_path("kolmogorov", "cpu").name == "kolmogorov.pt"
    assert default_model_path("kolmogorov", "cuda").name == "kolmogorov_unet.pt"
    assert [p.name for p in shipped_model_paths("kolmogorov", "cuda")] == ["kolmogorov_unet.pt", "kolmogorov.pt"]
    assert [p.name for p in shipped_model_paths("kolmogorov", "cpu")] == ["kolmogorov.pt", "kolmogorov_unet.pt"]
    assert default_model_path("lorenz63", "cuda").name == "lorenz63.pt"


def test_lorenz96_large_model_is_the_cuda_and_benchmark_default():
    from sda_gui.bench_sda import model_for

    assert default_model_path("lorenz96", "cpu").name == "lorenz96.pt"
    assert default_model_path("lorenz96", "cuda").name == "lorenz96_large.pt"
    assert [p.name for p in shipped_model_paths("lorenz96", "cpu")] == ["lorenz96.pt", "lorenz96_large.pt"]
    small, large = (load_checkpoint(RESOURCES / n, "cpu") for n in ("lorenz96.pt", "lorenz96_large.pt"))
    assert small.k == large.k == 4
    assert sum(p.numel() for p in large.net.parameters()) > 4 * sum(p.numel() for p in small.net.parameters())
    assert model_for("lorenz96").arch == large.arch
