"""Fault injection on the app's files: damaged sessions are refused whole, failed saves keep the old file.

Every malformed session is generated from a good one (type, shape and value mutations
of each entry, truncation). Opening one must answer ``False`` with one line and leave
the current work exactly as it was: truth, pattern, values, σ, results, model and
settings. Writers run under a full disk (``RLIMIT_FSIZE`` in a subprocess): one line,
the previous file intact, no temporary left, a clean exit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snapshot(window):
    st, panel = window.state, window.assimilation_panel
    return {"truth": st.truth.copy(), "mask": st.mask.copy(), "operator": st.operator,
            "values": None if st.obs_values is None else st.obs_values.copy(), "std": st.obs_std,
            "seed": st.obs_seed, "system": st.system.config(), "model": st.model, "model_path": st.model_path,
            "results": st.results, "settings": panel.sampler_settings(), "history": st.editor.can_undo}


def _same(a, b) -> list[str]:
    diff = []
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if x is None or y is None or x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
                diff.append(key)
        elif x is not y and x != y:
            diff.append(key)
    return diff


def _mutations():
    """(name, how) pairs; ``how(f)`` edits an open copy of the good session (h5py, r+)."""

    def attr(key, value):
        def how(f):
            f.attrs[key] = value
        return how

    def drop_attr(key):
        def how(f):
            del f.attrs[key]
        return how

    def drop(key, group=None):
        def how(f):
            del (f if group is None else f[group])[key]
        return how

    def data(key, value, group=None):
        def how(f):
            g = f if group is None else f[group]
            if key in g:
                del g[key]
            g.create_dataset(key, data=value)
        return how

    def settings(**assimilation):
        def how(f):
            s = json.loads(f.attrs["settings"])
            s["assimilation"].update(assimilation)
            f.attrs["settings"] = json.dumps(s)
        return how

    def result_settings(**values):
        def how(f):
            s = json.loads(f["results"].attrs["settings"])
            s.update(values)
            f["results"].attrs["settings"] = json.dumps(s)
        return how

    def group_instead(key):
        def how(f):
            del f[key]
            f.create_group(key)
        return how

    def results_dataset(f):
        del f["results"]
        f.create_dataset("results", data=np.zeros(3))

    L, V = 64, 40
    rng = np.random.default_rng(0)
    nan_truth = rng.normal(size=(L, V)).astype(np.float32)
    nan_truth[3, 4] = np.nan
    out = [
        ("format missing", drop_attr("format")), ("format wrong", attr("format", "something-else/1")),
        ("format a number", attr("format", 3)),
        ("system {}", attr("system", "{}")), ("system a list", attr("system", "[1, 2]")),
        ("system not JSON", attr("system", "{{")), ("system missing", drop_attr("system")),
        ("system unknown", attr("system", json.dumps({"name": "nope", "params": {}}))),
        ("system bogus params", attr("system", json.dumps({"name": "lorenz96", "params": {"bogus": 1}}))),
        ("system params a list", attr("system", json.dumps({"name": "lorenz96", "params": [1]}))),
        ("system n = -3", attr("system", json.dumps({"name": "lorenz96", "params": {"n": -3}}))),
        ("system n text", attr("system", json.dumps({"name": "lorenz96", "params": {"n": "abc"}}))),
        ("system forcing NaN", attr("system", '{"name": "lorenz96", "params": {"forcing": NaN}}')),
        ("system n = 41", attr("system", json.dumps({"name": "lorenz96", "params": {"n": 41}}))),
        ("mask missing", drop("mask")), ("mask scalar", data("mask", True)),
        ("mask wrong shape", data("mask", np.ones((L, 7), bool))), ("mask 1-D", data("mask", np.ones(L, bool))),
        ("mask fractional", data("mask", np.full((L, V), 0.5))), ("mask text", data("mask", np.array([b"x"] * 3))),
        ("mask zero states", data("mask", np.ones((0, V), bool))), ("mask a group", group_instead("mask")),
        ("truth wrong shape", data("truth", np.zeros((L, 7), np.float32))),
        ("truth 1-D", data("truth", np.zeros(L, np.float32))),
        ("truth wrong length", data("truth", np.zeros((L - 1, V), np.float32))),
        ("truth NaN", data("truth", nan_truth)), ("truth text", data("truth", np.array([b"a", b"b"]))),
        ("truth beyond float32", data("truth", np.full((L, V), 1e300))), ("truth a group", group_instead("truth")),
        ("values wrong shape", data("obs_values", np.zeros((L, 3), np.float32))),
        ("values infinite", data("obs_values", np.full((L, V), np.inf, np.float32))),
        ("std -1", attr("obs_std", -1.0)), ("std 0", attr("obs_std", 0.0)), ("std NaN", attr("obs_std", np.nan)),
        ("std text", attr("obs_std", "abc")), ("std 1e9", attr("obs_std", 1e9)),
        ("std an array", attr("obs_std", np.ones(3))),
        ("seed 2^31", attr("obs_seed", 2**31)), ("seed -1", attr("obs_seed", -1)), ("seed 1.5", attr("obs_seed", 1.5)),
        ("seed text", attr("obs_seed", "x")),
        ("model_path a number", attr("model_path", 5)),
        ("settings not JSON", attr("settings", "{nope")), ("settings a list", attr("settings", "[1]")),
        ("steps text", settings(steps="abc")), ("steps 0", settings(steps=0)), ("steps 1e9", settings(steps=1e9)),
        ("steps 2.5", settings(steps=2.5)), ("steps a list", settings(steps=[3])),
        ("sampler seed 2^31", settings(seed=2**31)), ("guidance unknown", settings(guidance="foo")),
        ("tau a list", settings(tau=[0.1])), ("tau NaN", settings(tau=float("nan"))), ("device 3", settings(device=3)),
        ("samples 0", settings(n_samples=0)), ("corrections -1", settings(corrections=-1)),
        ("assimilation settings a list", lambda f: f.attrs.__setitem__("settings", json.dumps({"assimilation": [1]}))),
        ("system seed -5", lambda f: f.attrs.__setitem__(
            "settings", json.dumps({**json.loads(f.attrs["settings"]), "system_seed": -5}))),
        ("operator foo:3", attr("operator", "foo:3")), ("operator coarsen:x", attr("operator", "coarsen:x")),
        ("operator coarsen:3 on 40", attr("operator", "coarsen:3")),
        ("dataset 1-D", data("dataset", np.zeros(5, np.float32))),
        ("dataset NaN", data("dataset", np.full((2, 8, V), np.nan, np.float32))),
        ("dataset wrong states", data("dataset", np.zeros((2, 8, 3), np.float32))),
        ("dataset empty", data("dataset", np.zeros((0, 8, V), np.float32))),
        ("results a dataset", results_dataset),
        ("samples missing", drop("samples", "results")),
        ("zero samples", data("samples", np.zeros((0, L, V), np.float32), "results")),
        ("samples wrong length", data("samples", np.zeros((3, L - 2, V), np.float32), "results")),
        ("samples wrong states", data("samples", np.zeros((3, L, 5), np.float32), "results")),
        ("samples NaN", data("samples", np.full((3, L, V), np.nan, np.float32), "results")),
        ("samples 2-D", data("samples", np.zeros((L, V), np.float32), "results")),
        ("result mask missing", drop("mask", "results")),
        ("result mask wrong shape", data("mask", np.ones((L, 3), bool), "results")),
        ("result values missing", drop("values", "results")),
        ("result values wrong shape", data("values", np.zeros((L, 3), np.float32), "results")),
        ("result values NaN", data("values", np.full((L, V), np.nan, np.float32), "results")),
        ("result std -1", data("std", np.float32(-1), "results")), ("result std 0", data("std", np.float32(0), "results")),
        ("result std NaN", data("std", np.float32(np.nan), "results")),
        ("result std wrong shape", data("std", np.ones(3, np.float32), "results")),
        ("result truth wrong shape", data("truth", np.zeros((L, 3), np.float32), "results")),
        ("result settings not JSON", lambda f: f["results"].attrs.__setitem__("settings", "{x")),
        ("result guidance a number", result_settings(guidance=5)),
        ("result seconds text", result_settings(seconds="x")),
        ("result operator foo", lambda f: f["results"].attrs.__setitem__("operator", "foo:2")),
    ]
    return out


@pytest.fixture
def good_session(window, qtbot, tmp_path):
    """A saved session with results (the default scenario after a short run)."""
    with qtbot.waitSignal(window.assimilation_panel.runEnded, timeout=60_000):
        assert window.assimilate()
    window.assimilation_panel.steps_spin.setValue(7)
    path = tmp_path / "good.h5"
    assert window.save_session(str(path))
    return path


def test_damaged_sessions_are_refused_whole(window, good_session, tmp_path):
    import h5py

    # the work that must survive every failed open: another pattern, σ, settings and results
    window.grid_editor.random_pattern(0.4, 3)
    window.grid_editor.generate_observations(seed=2, std=0.7)
    window.assimilation_panel.steps_spin.setValue(11)
    before = _snapshot(window)
    tried = clean = crashed = lost = 0
    failures = []
    cases = [(name, how, None) for name, how in _mutations()]
    raw = good_session.read_bytes()
    for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
        cases.append((f"truncated to {frac:.0%}", None, raw[: int(len(raw) * frac)]))
    cases.append(("garbage", None, b"\x89HDF\r\n\x1a\n" + os.urandom(4096)))
    for i, (name, how, content) in enumerate(cases):
        path = tmp_path / f"bad{i}.h5"
        if content is None:
            shutil.copy(good_session, path)
            with h5py.File(path, "r+") as f:
                how(f)
        else:
            path.write_bytes(content)
        tried += 1
        window.last_error = ""
        try:
            opened = window.open_session(str(path))
        except Exception as exc:  # noqa: BLE001 - counted, then reported
            crashed += 1
            failures.append(f"{name}: crashed with {type(exc).__name__}: {exc}")
            continue
        changed = _same(before, _snapshot(window))
        if changed:
            lost += 1
            failures.append(f"{name}: changed {changed}")
        elif opened or not window.last_error or "\n" in window.last_error:
            failures.append(f"{name}: opened={opened}, message {window.last_error!r}")
        else:
            clean += 1
    print(f"\nsession faults: tried {tried} / clean {clean} / crashed {crashed} / lost {lost}")
    assert not failures, "\n".join(failures)
    # and the good file still opens after all that
    assert window.open_session(str(good_session))
    assert window.assimilation_panel.steps_spin.value() == 7 and window.state.results is not None


def test_a_missing_or_unusable_model_is_dropped_with_a_note(window, good_session, tmp_path):
    import h5py

    for name, target in (("missing", str(tmp_path / "gone.pt")), ("garbage", str(tmp_path / "junk.pt"))):
        (tmp_path / "junk.pt").write_bytes(b"not a model")
        path = tmp_path / f"{name}.h5"
        shutil.copy(good_session, path)
        with h5py.File(path, "r+") as f:
            f.attrs["model_path"] = target
        model = window.state.model
        assert window.open_session(str(path)), window.last_error
        text = window.status_label.text()
        assert "gone.pt" in text or "junk.pt" in text, text
        assert window.state.model is model      # the model in use stays
        assert window.state.results is not None


def test_a_failure_while_applying_puts_everything_back(window, good_session, monkeypatch):
    import sda_gui.app.session_actions as actions

    calls = []

    def fail_once(self, data, _real=actions.SessionActions._apply_session):
        calls.append(1)
        if len(calls) == 1:
            _real(self, data)            # half-way through: the truth and pattern are in
            raise RuntimeError("simulated failure")
        return _real(self, data)

    window.load_default_scenario()
    before = _snapshot(window)
    monkeypatch.setattr(actions.SessionActions, "_apply_session", fail_once)
    assert not window.open_session(str(good_session))
    assert "simulated failure" in window.last_error and "unchanged" in window.last_error
    changed = [k for k in _same(before, _snapshot(window)) if k not in ("model", "history")]
    assert not changed, changed


def test_failed_saves_say_one_line_and_keep_the_old_file(window, tmp_path):
    folder = tmp_path / "a folder.h5"
    folder.mkdir()
    assert not window.save_session(str(folder))
    assert "folder" in window.last_error and "\n" not in window.last_error
    ro = tmp_path / "ro"
    ro.mkdir()
    old = ro / "s.h5"
    assert window.save_session(str(old))
    content = old.read_bytes()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):   # root writes anywhere: nothing to test here
            pytest.skip("running as a user who can write into read-only folders")
        window.grid_editor.random_pattern(0.5, 1)
        assert not window.save_session(str(old))
        assert "\n" not in window.last_error and old.read_bytes() == content
    finally:
        os.chmod(ro, 0o700)


_FULL_DISK = textwrap.dedent("""
    import os, resource, signal, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    out = sys.argv[1]
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from sda_gui.app.main_window import MainWindow
    w = MainWindow(settings_path=os.path.join(out, "s.ini"))
    for name in ("session.h5", "obs.npz", "obs.h5"):
        path = os.path.join(out, name)
        ok = w.save_session(path) if name == "session.h5" else w.save_observations(path)
        assert ok, w.last_error
    import hashlib
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
    before = {n: digest(os.path.join(out, n)) for n in ("session.h5", "obs.npz", "obs.h5")}
    w.grid_editor.random_pattern(0.9, 5)   # other content, so a half-written file would differ
    # a full disk: writes beyond 4 KiB fail with EFBIG instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    for name in ("session.h5", "obs.npz", "obs.h5"):
        path = os.path.join(out, name)
        ok = w.save_session(path) if name == "session.h5" else w.save_observations(path)
        intact = digest(path) == before[name]
        print("saved" if ok else "refused", name, "intact" if intact else "CHANGED", repr(w.last_error))
    w.shutdown()
    w.close()
""")


def test_a_full_disk_keeps_every_old_file_and_exits_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SDA_STUDIO_SETTINGS": str(tmp_path / "s.ini")}
    script = tmp_path / "full_disk.py"
    script.write_text(_FULL_DISK)
    # the good files, written first by the same script (before the limit)
    res = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                         timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stdout.splitlines() if line.startswith(("saved", "refused"))]
    assert len(lines) == 3 and all(line.startswith("refused") for line in lines), res.stdout
    for line in lines:
        assert line.split(" ")[2] == "intact", line
        message = line.split(" ", 3)[3]
        assert "\\n" not in message and len(message) < 300, message
    assert "Traceback" not in res.stderr and "HDF5-DIAG" not in res.stderr, res.stderr[-3000:]
    from sda_gui.app.session import load_session
    from sda_gui.core.observation import Observation

    data = load_session(tmp_path / "session.h5", load_model=False)
    assert data.mask.shape == (64, 40)
    for name in ("obs.npz", "obs.h5"):
        assert Observation.load(tmp_path / name).mask.shape == (64, 40)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


_SAVE_LOOP = textwrap.dedent("""
    import sys
    import numpy as np
    from sda_gui.app.session import SessionData, save_session
    path, i = sys.argv[1], 0
    rng = np.random.default_rng(0)
    while True:
        i += 1
        truth = np.full((64, 40), float(i), np.float32)
        data = SessionData(system={"name": "lorenz96", "params": {}}, truth=truth, mask=np.ones((64, 40), bool),
                           dataset=rng.normal(size=(64, 256, 40)).astype(np.float32))
        save_session(path, data)
        print(i, flush=True)
""")


def test_sigkill_during_a_save_leaves_a_whole_session(tmp_path):
    """Killed at any moment, the file is the previous session or the new one, never a mix."""
    import signal
    import time

    from sda_gui.app.session import load_session

    path = tmp_path / "s.h5"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        saved = [proc.stdout.readline() for _ in range(3)]       # three whole saves, the fourth under way
        assert all(line.strip() for line in saved), saved
    finally:
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    data = load_session(path, load_model=False)
    value = float(data.truth[0, 0])
    assert value >= 3 and np.all(data.truth == value) and data.dataset.shape == (64, 256, 40)


def test_damaged_trajectory_and_model_files_change_nothing(window, tiny_model_path, tmp_path):
    """Loading trajectories or choosing a model from a bad file: one line, the work as it was."""
    import h5py

    st, sp, panel = window.state, window.system_panel, window.assimilation_panel
    before = _snapshot(window)
    good = np.random.default_rng(0).normal(size=(2, 16, 40))
    traj = {
        "beyond float32.npy": np.full((2, 16, 40), 1e300),
        "no trajectories.npy": np.zeros((0, 16, 40)),
        "two states.npy": np.zeros((2, 2, 40)),
        "NaN.npy": np.where(good > 2, np.nan, good),
        "1-D.npy": np.zeros(16),
        "text.npy": np.array(["a", "b"]),
        "odd shape.npy": np.zeros((2, 16, 7, 5)),
    }
    cases = []
    for name, arr in traj.items():
        np.save(tmp_path / name, arr)
        cases.append(("trajectories", tmp_path / name))
    npz = tmp_path / "t.npz"
    np.savez(npz, trajectories=good.astype(np.float32))
    (tmp_path / "truncated.npz").write_bytes(npz.read_bytes()[:200])
    cases.append(("trajectories", tmp_path / "truncated.npz"))
    h5 = tmp_path / "meta.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("trajectories", data=good.astype(np.float32))
        f.attrs["system"] = "lorenz96"
        f.attrs["params"] = json.dumps({"bogus": 3})
    cases.append(("trajectories", h5))
    (tmp_path / "empty.h5").write_bytes(b"")
    cases.append(("trajectories", tmp_path / "empty.h5"))
    model_bytes = open(tiny_model_path, "rb").read()
    (tmp_path / "zero.pt").write_bytes(b"")
    (tmp_path / "half.pt").write_bytes(model_bytes[: len(model_bytes) // 2])
    (tmp_path / "garbage.pt").write_bytes(os.urandom(2048))
    (tmp_path / "folder.pt").mkdir()
    for name in ("zero.pt", "half.pt", "garbage.pt", "folder.pt", "missing.pt"):
        cases.append(("model", tmp_path / name))
    tried = clean = crashed = lost = 0
    failures = []
    for kind, path in cases:
        tried += 1
        try:
            ok = sp.load_file(str(path)) if kind == "trajectories" else panel.select_model(str(path))
        except Exception as exc:  # noqa: BLE001 - counted, then reported
            crashed += 1
            failures.append(f"{path.name}: crashed with {type(exc).__name__}: {exc}")
            continue
        message = (sp.error if kind == "trajectories" else panel.error).text()
        changed = _same(before, _snapshot(window))
        if changed:
            lost += 1
            failures.append(f"{path.name}: changed {changed}")
        elif ok or not message or "\n" in message:
            failures.append(f"{path.name}: accepted={ok}, message {message!r}")
        else:
            clean += 1
    print(f"\ntrajectory/model faults: tried {tried} / clean {clean} / crashed {crashed} / lost {lost}")
    assert not failures, "\n".join(failures)
    assert st.model is before["model"]


def test_a_session_of_a_plugin_system_reopens_and_refuses_cleanly_without_its_file(window, qtbot, tmp_path,
                                                                                  restore_registries):
    import shutil
    from pathlib import Path

    plugin = tmp_path / "my_lorenz84.py"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "lorenz84.py", plugin)
    panel = window.system_panel
    assert panel.load_system_file(str(plugin))
    with qtbot.waitSignal(panel.runner.finished, timeout=120_000):
        assert panel.simulate()
    path = tmp_path / "plugin-session.h5"
    assert window.save_session(str(path))
    window.confirm = lambda text: True
    assert window.open_session(str(path)) and window.state.system.name == "lorenz84"
    # as a new process would find it: the system not registered, its file gone
    from sda_gui.core.systems import SYSTEMS

    del SYSTEMS["lorenz84"]   # restore_registries puts everything back after the test
    plugin.unlink()
    truth = window.state.truth.copy()
    assert not window.open_session(str(path))
    assert "lorenz84" in window.last_error and "\n" not in window.last_error
    assert window.state.truth is not None and (window.state.truth == truth).all()
