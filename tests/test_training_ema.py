"""The moving average of the weights (``train --ema``): what is saved, what resumes.

The expected average is computed here from the raw iterates, recorded by an
optimiser that snapshots the weights after each step, with the formula of
``core.diffusion.ema`` written out again: β_n = min(β, (1 + n) / (10 + n)).
"""

from __future__ import annotations

import pytest
import torch

from sda_gui.core.diffusion import training
from sda_gui.core.diffusion.checkpoint import read_checkpoint
from sda_gui.core.diffusion.ema import WeightAverage
from sda_gui.core.diffusion.training import TrainConfig, train_model
from sda_gui.core.systems import make_system

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARCH = {"name": "resmlp", "width": 16, "depth": 1}
STEPS = 24


@pytest.fixture(scope="module")
def lorenz63():
    return make_system("lorenz63")


@pytest.fixture(scope="module")
def data(lorenz63):
    return lorenz63.simulate(6, 48, seed=1)


def _config(**kw):
    base = dict(k=2, arch=dict(ARCH), steps=STEPS, batch_size=32, val_every=8, seed=0)
    base.update(kw)
    return TrainConfig(**base)


class Recording(torch.optim.AdamW):
    """AdamW that keeps the weights before its first step and after every step."""
    runs: list = []

    def step(self, *args, **kw):
        params = [p for g in self.param_groups for p in g["params"]]
        if not getattr(self, "_recording", False):
            self._recording = True
            Recording.runs.append([[p.detach().clone() for p in params]])
        out = super().step(*args, **kw)
        Recording.runs[-1].append([p.detach().clone() for p in params])
        return out


@pytest.fixture
def recorded(monkeypatch):
    Recording.runs = []
    monkeypatch.setattr(training.torch.optim, "AdamW", Recording)
    return Recording.runs


def _average(start, iterates, decay, first_update=1):
    avg = [w.clone() for w in start]
    for n, weights in enumerate(iterates, start=first_update):
        beta = min(decay, (1 + n) / (10 + n))
        avg = [beta * a + (1 - beta) * w for a, w in zip(avg, weights)]
    return avg


def _close(a, b, tol=1e-5):
    return all(torch.allclose(x, y, atol=tol, rtol=0) for x, y in zip(a, b))


def test_weight_average_formula_and_warm_up():
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    avg = WeightAverage(net, 0.9)
    assert avg.beta() == pytest.approx(2 / 11)       # the warm-up: n = 1
    with torch.no_grad():
        net.weight.fill_(1.0)
    avg.update()
    assert avg.shadow[0].item() == pytest.approx(9 / 11)
    avg.updates = 1000
    assert avg.beta() == 0.9                          # past the warm-up: the decay itself
    with avg.applied():
        assert net.weight.item() == pytest.approx(9 / 11)
    assert net.weight.item() == 1.0                   # the raw weights are back
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, 1.0)


def test_the_saved_model_is_the_average_of_the_iterates(recorded, lorenz63, data, tmp_path):
    plain, _ = train_model(lorenz63, data, _config())
    averaged, history = train_model(lorenz63, data, _config(ema=0.5), checkpoint_path=tmp_path / "m.pt")
    raw_run, ema_run = recorded
    assert len(raw_run) == len(ema_run) == STEPS + 1
    # the average does not change what the optimiser does
    assert all(_close(a, b, 0) for a, b in zip(raw_run, ema_run))
    assert _close(list(plain.net.parameters()), raw_run[-1], 0)
    expected = _average(raw_run[0], raw_run[1:], 0.5)
    assert _close(list(averaged.net.parameters()), expected)
    assert not _close(expected, raw_run[-1])          # the case tells the average from the last weights
    saved = read_checkpoint(tmp_path / "m.pt")
    names = [n for n, _ in averaged.net.named_parameters()]
    assert _close([saved["weights"][n] for n in names], expected)
    assert saved["training"]["ema"] == 0.5 and "train_state" not in saved
    assert history["val"][-1] is not None


def test_a_stopped_run_saves_the_average_and_resumes_from_the_raw_weights(recorded, lorenz63, data, tmp_path):
    path = tmp_path / "resumable.pt"
    done = [0]
    _, history = train_model(lorenz63, data, _config(ema=0.5, save_every=5), checkpoint_path=path,
                             should_stop=lambda: done[0] >= 10,
                             progress=lambda step, total, loss, val: done.__setitem__(0, step))
    assert history["stopped"] and history["step"][-1] == 10
    first = recorded[0]
    saved = read_checkpoint(path)
    names = list(saved["train_state"]["raw_weights"])
    params = [n for n in names if n in dict(_named(lorenz63))]
    assert _close([saved["train_state"]["raw_weights"][n] for n in params], first[10], 0)
    at_stop = _average(first[0], first[1:11], 0.5)
    assert _close([saved["weights"][n] for n in params], at_stop)
    assert saved["train_state"]["ema"]["updates"] == 10

    resumed, history2 = train_model(lorenz63, data, _config(ema=0.5), checkpoint_path=path, resume_from=path)
    second = recorded[1]
    assert history2["step"][-1] == STEPS and len(second) == STEPS - 10 + 1
    assert _close(second[0], first[10], 0)            # the optimiser went on from the raw weights
    expected = _average(at_stop, second[1:], 0.5, first_update=11)
    assert _close(list(resumed.net.parameters()), expected)


def _named(system):
    from sda_gui.core.diffusion.checkpoint import build_model

    return build_model(system, 2, dict(ARCH)).net.named_parameters()
