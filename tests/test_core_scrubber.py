"""The diffusion-time recording behind the scrubber: shapes, the last frame, the memory bound."""

import pytest
import torch

from sda_gui.core.assimilation import assimilate
from sda_gui.core.diffusion.checkpoint import default_model_path, load_checkpoint
from sda_gui.core.diffusion.sampler import RECORD_MAX_BYTES, TrajectoryRecorder
from sda_gui.core.methods import MethodError, run_method
from sda_gui.core.observation import every_nth_state_mask, synthesize
from sda_gui.core.systems import make_system

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def problem():
    system = make_system("lorenz63")
    truth = system.simulate(1, 16, seed=5)[0].numpy()
    obs = synthesize(truth, every_nth_state_mask(16, (3,), 4, [0]), 0.5, seed=2)
    model = load_checkpoint(default_model_path("lorenz63").with_name("lorenz63_k3.pt"))   # a 7-state window fits 16 states
    return system, truth, obs, model


def test_recording_ends_on_the_returned_samples(problem):
    _, _, obs, model = problem
    recorder = TrajectoryRecorder([0, 2])
    samples = assimilate(model, obs, 3, steps=6, corrections=1, seed=4, recorder=recorder)
    traj = recorder.trajectory
    assert traj.x.shape == (7, 2, 16, 3) and traj.x_hat.shape == (7, 2, 16, 3)
    assert traj.x.dtype == torch.float32 and traj.x.device.type == "cpu"
    assert traj.times[0] == pytest.approx(1.0) and traj.times[-1] == pytest.approx(0.0)
    assert bool((traj.times[1:] < traj.times[:-1]).all())
    assert traj.steps == tuple(range(7))
    # the last frame is the sample itself, x and x̂ alike
    assert torch.equal(traj.x[-1], samples[[0, 2]])
    assert torch.equal(traj.x_hat[-1], samples[[0, 2]])
    # the first frame is noise in physical units: far from the final sample
    assert float((traj.x[0] - traj.x[-1]).abs().mean()) > 1.0


def test_recording_changes_nothing_of_the_samples(problem):
    _, _, obs, model = problem
    plain = assimilate(model, obs, 3, steps=5, corrections=1, seed=9)
    recorded = assimilate(model, obs, 3, steps=5, corrections=1, seed=9, recorder=TrajectoryRecorder([1]))
    assert torch.equal(plain, recorded)


def test_memory_bound_thins_then_refuses(problem):
    _, _, obs, model = problem
    frame = TrajectoryRecorder.frame_bytes(1, (16, 3))
    assert frame == 2 * 4 * 16 * 3
    # room for 4 frames out of 11: the first and the last are kept, evenly spaced between
    recorder = TrajectoryRecorder([0], max_bytes=4 * frame)
    samples = assimilate(model, obs, 2, steps=10, corrections=0, seed=1, recorder=recorder)
    traj = recorder.trajectory
    assert len(traj.steps) == 4 and traj.steps[0] == 0 and traj.steps[-1] == 10
    assert traj.nbytes <= 4 * frame
    assert torch.equal(traj.x[-1], samples[[0]])
    with pytest.raises(ValueError, match="record fewer samples"):
        TrajectoryRecorder([0], max_bytes=frame).plan(10, (2, 16, 3))
    with pytest.raises(ValueError, match="cannot record sample 5"):
        TrajectoryRecorder([5]).plan(10, (2, 16, 3))
    assert RECORD_MAX_BYTES == 256 * 2**20


def test_sda_method_exposes_the_trajectory(problem):
    system, _, obs, model = problem
    res = run_method("sda", system, obs, 4, {"steps": 4, "corrections": 0, "record": 2}, model=model)
    traj = res.diagnostics["trajectory"]
    assert traj.x.shape == (5, 2, 16, 3)
    assert torch.equal(traj.x[-1], res.members[:2])
    plain = run_method("sda", system, obs, 2, {"steps": 2, "corrections": 0}, model=model)
    assert "trajectory" not in plain.diagnostics and plain.settings["record"] == 0
    with pytest.raises(MethodError, match="record must be ≥ 0"):
        run_method("sda", system, obs, 2, {"record": -1}, model=model)
