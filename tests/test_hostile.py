"""Files rethinkgen did not write: hostile pickles and checkpoints, names that try to leave the runs folder,
damaged summaries, records, checkpoints and indexes, a full disk, a read-only or shared runs folder."""

import errno
import hashlib
import json
import os
import pickle
import sqlite3
import stat

import numpy as np
import pytest
import torch

from helpers import interrupt_after
from rethinkgen import store as results
from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.data.cifar import write_batch
from rethinkgen.engine.checkpoints import save_state
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.store import (
    INDEX_NAME,
    atomic_write,
    check_run_id,
    load,
    safe_name,
)

TINY = {"dataset": "digits", "subset": 150, "test_subset": 60, "epochs": 3, "log_every": 2}
TINY_FLAGS = ["--subset", "150", "--test-subset", "60", "--epochs", "3", "--log-every", "2", "--quiet"]
TIMING = {"train_seconds", "wall_seconds", "images_per_second"}


class WritesAFile:
    """Unpickling this runs open(path, "w"): the file appears if, and only if, the pickle was executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rethinkgen: error: "), err
    return lines[0]


def digest(folder) -> dict:
    """Every file under ``folder`` (the index included) with its bytes' hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.fixture
def interrupted(tmp_path):
    """A digits run stopped (as by Ctrl-C) after its 1st epoch: checkpoint.pt holds epoch 1 of 3."""
    config = RunConfig(**TINY)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "runs", progress=False, on_epoch_end=interrupt_after(1))
    run_dir = tmp_path / "runs" / config.run_id()
    assert (run_dir / "checkpoint.pt").is_file()
    return config, run_dir


@pytest.fixture
def reference(tmp_path):
    """The same run trained without interruption."""
    return train(RunConfig(**TINY), tmp_path / "reference", progress=False)


# ---------------------------------------------------------------------------------------- CIFAR pickles
def _cifar_folder(folder, per_batch=4, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"c{k}".encode() for k in range(10)]}, handle)
    rng = np.random.default_rng(0)
    for name, count in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        write_batch(folder / name, rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8),
                    [int(k) for k in rng.integers(0, 10, count)])
    return folder


def _make_hostile(path, marker):
    with open(path, "wb") as handle:
        pickle.dump({b"label_names": WritesAFile(marker)}, handle)


def test_a_hostile_cifar_meta_file_is_refused_by_run_without_running_it(tmp_path, capsys):
    folder = _cifar_folder(tmp_path / "cifar")
    marker = tmp_path / "pwned"
    _make_hostile(folder / "batches.meta", marker)
    code, _, err = run_cli(capsys, "run", "--dataset", "cifar10", "--data-dir", folder, "--runs", tmp_path / "runs",
                           *TINY_FLAGS[4:])
    line = one_error_line(err)
    assert code == 2 and not marker.exists()
    assert str(folder / "batches.meta") in line and "refused" in line and "io.open" in line
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())


def test_a_hostile_cifar_batch_is_refused_by_the_datasets_listing(tmp_path, capsys):
    folder = _cifar_folder(tmp_path / "cifar")
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": WritesAFile(marker), b"labels": []}, handle)
    code, out, _ = run_cli(capsys, "list", "datasets", "--data-dir", folder)
    assert code == 0 and not marker.exists()
    assert "refused" in out and "data_batch_3" in out


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_every_pickle_protocol_and_numpy_naming_load(tmp_path, protocol):
    """numpy arrays pickled by numpy 2 (numpy._core), numpy 1 and the original files (numpy.core), with
    _frombuffer (protocol 5), _codecs.encode (bytes in protocol 2) and numpy scalars all load."""
    from rethinkgen.data.cifar import load_cifar

    folder = _cifar_folder(tmp_path / "cifar")
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    content = pickle.dumps({b"data": images, b"labels": [1, np.int64(7)], b"batch_label": b"x"}, protocol=protocol)
    if protocol == 2:  # as numpy 1 and the original CIFAR files name the reconstruction function
        assert b"numpy._core.multiarray" in content
        content = content.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (folder / "data_batch_2").write_bytes(content)
    data = load_cifar("cifar10", folder)
    np.testing.assert_array_equal(data.x_train[4:6].reshape(2, -1), images)
    assert list(data.y_train[4:6]) == [1, 7]


def test_measures_rebuild_a_runs_data_through_the_restricted_reader(tmp_path, capsys):
    """A runs folder whose run's config points at a CIFAR folder that turned hostile after training."""
    folder = _cifar_folder(tmp_path / "cifar")
    runs = tmp_path / "runs"
    config = RunConfig(dataset="cifar10", data_dir=str(folder), subset=16, test_subset=4, epochs=1)
    assert train(config, runs, progress=False).summary["status"] == "complete"
    marker = tmp_path / "pwned"
    _make_hostile(folder / "batches.meta", marker)
    code, _, err = run_cli(capsys, "measures", "--runs", runs, "--recompute", "--only", "frobenius_sum", "--quiet")
    assert code == 1 and not marker.exists()
    warnings = [line for line in err.splitlines() if "batches.meta" in line]
    assert len(warnings) == 1 and warnings[0].startswith("rethinkgen: warning: ") and "refused" in warnings[0]


# ---------------------------------------------------------------------------------------- checkpoints
def test_a_hostile_checkpoint_is_refused_without_running_it(interrupted, tmp_path, capsys, reference):
    _, run_dir = interrupted
    marker = tmp_path / "pwned"
    torch.save({"model": WritesAFile(marker), "optimizer": {}, "step": 1, "epochs": 1, "logged_steps": 0},
               run_dir / "checkpoint.pt")
    code, _, err = run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)
    line = one_error_line(err)
    assert code == 2 and not marker.exists()
    assert str(run_dir / "checkpoint.pt") in line and "io.open" in line and "--restart" in line
    # the way out: --restart trains it from the start, as if it had never run
    code, _, _ = run_cli(capsys, "run", "--runs", run_dir.parent, "--restart", *TINY_FLAGS)
    assert code == 0 and not marker.exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["test_accuracy"] == reference.summary["test_accuracy"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "not-a-dict", "missing-parts"])
def test_a_damaged_checkpoint_is_named_and_restart_is_the_way_out(interrupted, capsys, reference, damage):
    config, run_dir = interrupted
    path = run_dir / "checkpoint.pt"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not-a-dict":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"model": {}, "step": 3}, path)
    code, _, err = run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)
    line = one_error_line(err)
    assert code == 2 and str(path) in line and "--restart" in line
    code, out, _ = run_cli(capsys, "run", "--runs", run_dir.parent, "--restart", *TINY_FLAGS)
    assert code == 0 and "[complete]" in out
    resumed = train(config, run_dir.parent, progress=False)
    assert without_timing(resumed.metrics) == without_timing(reference.metrics)


def test_checkpoints_hold_only_what_weights_only_loading_accepts(interrupted):
    _, run_dir = interrupted
    for name in ("checkpoint.pt", "initial.pt"):
        state = torch.load(run_dir / name, map_location="cpu", weights_only=True)
        assert isinstance(state["model"], dict)
    assert set(torch.load(run_dir / "checkpoint.pt", weights_only=True)) == {"model", "optimizer", "step", "epochs", "schema_version",
                                                                               "logged_steps"}


def test_restart_never_touches_a_finished_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert run_cli(capsys, "run", "--runs", runs, *TINY_FLAGS)[0] == 0
    before = digest(runs / RunConfig(**TINY).run_id())
    code, out, _ = run_cli(capsys, "run", "--runs", runs, "--restart", *TINY_FLAGS)
    assert code == 0 and "already complete" in out
    assert digest(runs / RunConfig(**TINY).run_id()) == before


# ---------------------------------------------------------------------------------------- damaged files
def test_a_damaged_randomization_record_is_named(interrupted, capsys):
    _, run_dir = interrupted
    record = (run_dir / "randomization.json").read_text()
    for text, says in (('{"seed": ', "not valid JSON"), ("{}", "it lacks 'seed'"), ("[]", "not an object")):
        (run_dir / "randomization.json").write_text(text)
        code, _, err = run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)
        line = one_error_line(err)
        assert code == 2 and str(run_dir / "randomization.json") in line and says in line and "--restart" in line
    (run_dir / "randomization.json").write_text(record)
    (run_dir / "randomization.npz").write_bytes(b"PK garbage")
    code, _, err = run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)
    line = one_error_line(err)
    assert code == 2 and str(run_dir / "randomization.npz") in line and "--restart" in line
    assert run_cli(capsys, "run", "--runs", run_dir.parent, "--restart", *TINY_FLAGS)[0] == 0


def test_a_lock_that_is_a_directory_or_a_link_is_named_and_nothing_outside_is_touched(interrupted, tmp_path, capsys):
    _, run_dir = interrupted
    (run_dir / "lock").unlink()
    (run_dir / "lock").mkdir()
    code, _, err = run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)
    assert code == 2 and f"the lock file {run_dir / 'lock'} is a directory" in one_error_line(err)
    (run_dir / "lock").rmdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    (run_dir / "lock").symlink_to(outside)
    code, _, err = run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)
    assert code == 2 and "lock" in one_error_line(err) and outside.read_text() == "keep me"


def test_the_lock_file_is_never_truncated(interrupted, capsys):
    _, run_dir = interrupted
    (run_dir / "lock").write_text("not empty")
    assert run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)[0] == 0
    assert (run_dir / "lock").read_text() == "not empty"


def test_stale_temporary_files_are_removed_when_the_run_is_opened(interrupted, capsys):
    _, run_dir = interrupted
    for name in ("checkpoint.pt.k1ll3d.tmp", "summary.json.x7.tmp"):
        (run_dir / name).write_bytes(b"half a file")
    assert run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)[0] == 0
    assert not list(run_dir.glob("*.tmp"))


def _sweep_spec(tmp_path, name="noise", **extra):
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": name, "base": {**TINY, "epochs": 2}, "axes": {"label_noise": [0.0, 1.0]},
                                **extra}))
    return spec


def test_a_garbled_summary_stops_no_other_run(tmp_path, capsys):
    runs, spec = tmp_path / "runs", _sweep_spec(tmp_path)
    assert run_cli(capsys, "sweep", spec, "--runs", runs, "--quiet")[0] == 0
    bad, good = (RunConfig(**{**TINY, "epochs": 2, "label_noise": p}).run_id() for p in (0.0, 1.0))
    (runs / bad / "summary.json").write_text("")
    good_files = digest(runs / good)

    code, out, err = run_cli(capsys, "sweep", spec, "--runs", runs, "--dry-run")
    assert code == 0 and "unreadable" in out
    assert err.count("rethinkgen: warning:") == 1 and str(runs / bad / "summary.json") in err

    code, out, err = run_cli(capsys, "sweep", spec, "--runs", runs, "--quiet")
    assert code == 1 and "1 skipped (already finished)" in out and "1 skipped (summary.json damaged" in out
    assert str(runs / bad / "summary.json") in err and "--restart" in err and "Traceback" not in err
    assert (runs / bad / "summary.json").read_text() == ""  # left as it was

    code, _, err = run_cli(capsys, "run", "--runs", runs, "--epochs", "2", *TINY_FLAGS[:4], "--log-every", "2",
                           "--quiet")
    line = one_error_line(err)
    assert code == 2 and str(runs / bad / "summary.json") in line and "--restart" in line

    code, out, _ = run_cli(capsys, "sweep", spec, "--runs", runs, "--quiet", "--restart")
    assert code == 0 and "1 run(s) trained: 1 complete" in out
    assert json.loads((runs / bad / "summary.json").read_text())["status"] == "complete"
    assert digest(runs / good) == good_files  # the finished run was not touched


def test_a_damaged_summary_in_an_ensemble_fails_that_run_only(tmp_path):
    runs = tmp_path / "runs"
    bad = RunConfig(**{**TINY, "epochs": 2, "label_noise": 0.0}).run_id()
    (runs / bad).mkdir(parents=True)
    (runs / bad / "summary.json").write_text("[1, 2")
    from rethinkgen.engine.ensemble import train_ensemble

    configs = [RunConfig(**{**TINY, "epochs": 2, "label_noise": p}) for p in (0.0, 1.0)]
    first, second = train_ensemble(configs, runs, progress=False)
    assert first.summary["status"] == "failed" and "summary.json" in first.summary["message"]
    assert "--restart" in first.summary["message"] and second.summary["status"] == "complete"
    first, second = train_ensemble(configs, runs, progress=False, restart=True)
    assert first.summary["status"] == "complete" and second.summary["status"] == "complete"


# ---------------------------------------------------------------------------------------- names and ids
def test_safe_names_and_run_ids():
    for name in ("noise-sweep", "figure1a-digits-tiny", "demo-digits-mymodule_build", "a.b+c=d,e@f", "_x"):
        assert safe_name(name) == name
    for name in ("../x", "a/b", "/tmp/x", "..", ".hidden", "-flag", "a b", "", "x" * 200, "a\\b", "a\0b", None, 3):
        with pytest.raises(RethinkgenError, match="not allowed"):
            safe_name(name, "sweep name")
    assert check_run_id("0123456789ab") == "0123456789ab"
    for run_id in ("../../victim", "0123456789AB", "0123456789a", "0123456789abc", "", 5):
        with pytest.raises(RethinkgenError, match="is not a run id"):
            check_run_id(run_id)


@pytest.mark.parametrize("name", ["../{run}/summary", "/tmp/rethinkgen-absolute-sweep", "../../x", "a/../../b"])
def test_a_sweep_name_cannot_write_outside_the_sweeps_folder(tmp_path, capsys, name):
    runs = tmp_path / "runs"
    finished = train(RunConfig(**TINY), runs, progress=False)
    spec = _sweep_spec(tmp_path, name.format(run=finished.run_id))
    before = digest(tmp_path)
    for extra in ([], ["--dry-run"]):
        code, _, err = run_cli(capsys, "sweep", spec, "--runs", runs, "--quiet", *extra)
        assert code == 2 and "sweep name" in one_error_line(err) and "not allowed" in err
    assert digest(tmp_path) == before
    assert not os.path.exists("/tmp/rethinkgen-absolute-sweep.json")


def test_report_ignores_manifests_and_results_that_point_outside_the_runs_folder(tmp_path, capsys):
    runs, out, outside = tmp_path / "runs", tmp_path / "out", tmp_path / "outside"
    assert run_cli(capsys, "sweep", _sweep_spec(tmp_path), "--runs", runs, "--quiet")[0] == 0
    outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes(b"\x89PNG secret bytes")
    (runs / "sweeps" / "evil-name.json").write_text(json.dumps({"name": "../../outside/evil", "preset": "figure1a",
                                                                 "runs": []}))
    (runs / "sweeps" / "evil-id.json").write_text(json.dumps({"name": "fine", "preset": None,
                                                               "runs": [{"run_id": "../outside", "label": "x"}]}))
    (runs / "sweeps" / "garbled.json").write_text("{")
    theory = runs / "theory"
    theory.mkdir()
    (theory / "link.png").symlink_to(secret)
    (theory / "evil.json").write_text(json.dumps({"title": "Evil", "text": "", "tables": [],
                                                  "figures": [str(secret), "link.png", "/etc/passwd", "../x.png"]}))
    code, _, err = run_cli(capsys, "report", "--runs", runs, "--report-dir", out)
    assert code == 0
    for name in ("evil-name.json", "evil-id.json", "garbled.json", "link.png", str(secret), "/etc/passwd"):
        assert name in err
    assert sorted(p.name for p in outside.iterdir()) == ["secret.png"]
    assert not list(out.glob("*secret*")) and not list(out.glob("link*"))
    assert b"secret bytes" not in (out / "report.html").read_bytes()
    assert "Sweep noise" in (out / "report.md").read_text() and "Evil" in (out / "report.md").read_text()


def test_results_stored_by_older_versions_with_absolute_figure_paths_still_show(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    theory = runs / "theory"
    theory.mkdir(parents=True)
    (theory / "fig.png").write_bytes(b"\x89PNG figure")
    (theory / "old.json").write_text(json.dumps({"title": "Old", "text": "", "tables": [[["a"], [["1"]]]],
                                                 "figures": [str((theory / "fig.png").resolve())]}))
    assert run_cli(capsys, "report", "--runs", runs, "--report-dir", out)[0] == 0
    assert (out / "fig.png").read_bytes() == b"\x89PNG figure" and "fig.png" in (out / "report.md").read_text()


def test_a_run_id_from_the_index_cannot_reach_outside_the_runs_folder(tmp_path, capsys):
    runs = tmp_path / "a" / "b" / "runs"
    train(RunConfig(**TINY), runs, progress=False)
    victim = tmp_path / "a" / "victim"
    victim.mkdir()
    (victim / "lock").write_text("precious")
    db = sqlite3.connect(runs / INDEX_NAME)
    with db:
        db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)", ("../../victim", "complete", "{}", "{}", 0.0))
    db.close()
    code, _, err = run_cli(capsys, "measures", "--runs", runs, "--only", "frobenius_sum", "--quiet")
    assert code == 0 and "../../victim" in err and "is not a run id" in err
    assert (victim / "lock").read_text() == "precious" and sorted(p.name for p in victim.iterdir()) == ["lock"]
    assert list(load(runs)["run_id"]) == [RunConfig(**TINY).run_id()]


# ---------------------------------------------------------------------------------------- the index
def test_a_corrupt_index_is_rebuilt_from_the_run_folders(tmp_path, capsys):
    runs = tmp_path / "runs"
    first = train(RunConfig(**TINY), runs, progress=False)
    (runs / INDEX_NAME).write_bytes(b"this is not an sqlite database" * 100)
    code, _, err = run_cli(capsys, "report", "--runs", runs, "--report-dir", tmp_path / "report")  # a reader: rows from folders
    assert code == 0 and "cannot be read" in err and first.run_id in (tmp_path / "report" / "report.md").read_text()
    code, _, err = run_cli(capsys, "run", "--runs", runs, "--label-noise", "1", *TINY_FLAGS)
    assert code == 0 and "corrupt" in err and "rebuilt it from the 1 run folder(s)" in err
    assert (runs / (INDEX_NAME + ".corrupt")).is_file()
    frame = load(runs)
    assert sorted(frame["run_id"]) == sorted([first.run_id, RunConfig(**TINY, label_noise=1.0).run_id()])
    assert frame.set_index("run_id").loc[first.run_id, "test_accuracy"] == first.summary["test_accuracy"]


def test_readers_leave_a_read_only_runs_folder_untouched(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert run_cli(capsys, "sweep", _sweep_spec(tmp_path), "--runs", runs, "--quiet")[0] == 0
    before = digest(runs)
    folders = [runs, *[p for p in runs.rglob("*") if p.is_dir()]]
    for path in runs.rglob("*"):
        if path.is_file():
            path.chmod(0o444)
    for folder in folders:
        folder.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, "report", "--runs", runs, "--report-dir", tmp_path / "elsewhere")
        assert code == 0, err
        code, out, err = run_cli(capsys, "measures", "--runs", runs, "--no-compute")
        assert code == 0 and "Kendall's tau" in out, err
        assert digest(runs) == before  # not a byte written, not a file added (as root, chmod alone stops nothing)
    finally:
        for folder in folders:
            folder.chmod(0o755)


# ---------------------------------------------------------------------------------------- full disk
class FullDisk:
    """A file whose writes fail as on a full disk, after writing a few bytes."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def fileno(self):
        return self.handle.fileno()

    def flush(self):
        self.handle.flush()

    def write(self, data):
        self.handle.write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_during_a_checkpoint_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_state(path, {"model": {"w": torch.arange(5.0)}, "step": 1})
    before = path.read_bytes()
    real_fdopen = os.fdopen
    with monkeypatch.context() as patch:  # torch.save itself writes, and meets the full disk
        patch.setattr(os, "fdopen", lambda fd, mode="r": FullDisk(real_fdopen(fd, mode)))
        with pytest.raises(RethinkgenError, match=r"the disk is full: cannot write .*checkpoint.pt \(.* free there\)"):
            save_state(path, {"model": {"w": torch.zeros(100_000)}, "step": 2})
        with pytest.raises(RethinkgenError, match="the disk is full: cannot write .*summary.json"):
            results.write_json(tmp_path / "summary.json", {"status": "complete"})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]

    def torch_save_without_reason(state, handle):  # as torch.save to a path reports a full disk
        handle.write(b"partial")
        raise RuntimeError("basic_ios::clear: iostream error")
    monkeypatch.setattr(torch, "save", torch_save_without_reason)
    with pytest.raises(RethinkgenError, match=r"cannot write .*checkpoint.pt \(basic_ios::clear: iostream error\); "
                                              r".* free there: if the disk is full"):
        save_state(path, {"step": 3})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")

    def fails(handle):
        handle.write(b"new but cut")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(RethinkgenError, match="the disk is full"):
        atomic_write(path, fails)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_full_disk_while_training_is_one_line_and_the_run_resumes_after(interrupted, capsys, monkeypatch, reference):
    config, run_dir = interrupted
    checkpoint = (run_dir / "checkpoint.pt").read_bytes()

    def full(state, handle):  # what torch.save raises when its write meets a full disk
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0") from None
    monkeypatch.setattr(torch, "save", full)
    code, _, err = run_cli(capsys, "run", "--runs", run_dir.parent, *TINY_FLAGS)
    line = one_error_line(err)
    assert code == 2 and "the disk is full" in line and str(run_dir / "checkpoint.pt") in line
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint and not list(run_dir.glob("*.tmp"))
    monkeypatch.undo()
    resumed = train(config, run_dir.parent, progress=False)
    assert resumed.summary["status"] == "complete"
    assert without_timing(resumed.metrics) == without_timing(reference.metrics)


# ---------------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_run_files_are_readable_as_the_umask_allows(tmp_path, umask, mode):
    previous = os.umask(umask)
    results.file_mode.cache_clear()
    try:
        result = train(RunConfig(**{**TINY, "epochs": 1}), tmp_path, progress=False)
    finally:
        os.umask(previous)
        results.file_mode.cache_clear()
    for name in ("checkpoint.pt", "initial.pt", "summary.json", "config.json", "randomization.json",
                 "randomization.npz", "metrics.jsonl", "steps.jsonl", "measures.json", "lock"):
        assert stat.S_IMODE((result.run_dir / name).stat().st_mode) == mode, name


def test_a_torn_log_line_is_skipped_with_a_warning(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert run_cli(capsys, "sweep", _sweep_spec(tmp_path, preset="figure1a"), "--runs", runs, "--quiet")[0] == 0
    run_dir = runs / RunConfig(**{**TINY, "epochs": 2, "label_noise": 0.0}).run_id()
    rows = (run_dir / "steps.jsonl").read_text()
    (run_dir / "steps.jsonl").write_text(rows + '{"step": 99, "ep')  # as a killed writer leaves it
    code, _, err = run_cli(capsys, "report", "--runs", runs, "--report-dir", tmp_path / "report")
    assert code == 0 and f"{run_dir / 'steps.jsonl'}: line {rows.count(chr(10)) + 1} is damaged" in err
