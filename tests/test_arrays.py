"""Your own data: from_arrays, .npz files, and run ids that follow the data's SHA-256."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.data import arrays, from_arrays, load_npz
from rethinkgen.engine.ensemble import train_ensemble
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError

SMALL = dict(model="mlp-1x512", epochs=2, batch_size=32, log_every=2)


def toy_arrays(n_train=80, n_test=40, k=3, seed=0, shape=(8, 8)):
    """Images whose brightness says their class, labels 0..k-1."""
    rng = np.random.default_rng(seed)
    y_train, y_test = rng.integers(0, k, n_train), rng.integers(0, k, n_test)
    x_train = (y_train[:, None, None] * 80 + rng.integers(0, 40, (n_train, *shape))).astype(np.uint8)
    x_test = (y_test[:, None, None] * 80 + rng.integers(0, 40, (n_test, *shape))).astype(np.uint8)
    return x_train, y_train, x_test, y_test


def write_npz(path, *parts, **extra):
    x_train, y_train, x_test, y_test = parts or toy_arrays()
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return path


# ------------------------------------------------------------------------------------------- from_arrays
def test_from_arrays_accepts_each_layout_and_type_and_gives_uint8_nchw():
    x_train, y_train, x_test, y_test = toy_arrays()
    plain = from_arrays(x_train, y_train, x_test, y_test, name="toy")
    assert plain.x_train.shape == (80, 1, 8, 8) and plain.x_train.dtype == np.uint8
    assert plain.y_train.dtype == np.int64 and plain.classes == ("0", "1", "2")
    rgb = np.repeat(x_train[..., None], 3, axis=3)  # [N, H, W, C]
    last = from_arrays(rgb, y_train, np.repeat(x_test[..., None], 3, axis=3), y_test)
    first = from_arrays(rgb.transpose(0, 3, 1, 2), y_train, np.repeat(x_test[:, None], 3, axis=1), y_test)
    assert last.x_train.shape == first.x_train.shape == (80, 3, 8, 8)
    assert np.array_equal(last.x_train, first.x_train)
    scaled = from_arrays(x_train / 255.0, y_train.astype(np.float32), x_test / 255.0, y_test)  # floats in [0, 1]
    assert np.array_equal(scaled.x_train, plain.x_train) and np.array_equal(scaled.y_train, plain.y_train)
    named = from_arrays(x_train, y_train, x_test, y_test, classes=["a", "b", "c", "d"])
    assert named.num_classes == 4


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "y_train": a["y_train"][:-1]}, "y_train has shape (79,); it needs one label per image: [80]"),
    (lambda a: {**a, "y_test": a["y_test"] - 1}, "y_test holds the label -1"),
    (lambda a: {**a, "x_train": a["x_train"].astype(float) * np.nan}, "x_train holds NaN or infinite values"),
    (lambda a: {**a, "y_train": a["y_train"] + 0.5}, "y_train holds non-integer labels"),
    (lambda a: {**a, "x_test": a["x_test"][:0], "y_test": a["y_test"][:0]}, "x_test is empty"),
    (lambda a: {**a, "x_train": a["x_train"][:, :4]}, "training images (1, 4, 8) and test images (1, 8, 8)"),
    (lambda a: {**a, "x_train": a["x_train"][:, 0]}, "x_train has shape (80, 8); images are [N, H, W]"),
    (lambda a: {**a, "x_train": a["x_train"] * 2.0 - 300}, "float images lie in [0, 1] or [0, 255]"),
    (lambda a: {**a, "x_train": a["x_train"].astype(object)}, "x_train has type object"),
    (lambda a: {**a, "y_train": np.zeros(80, int), "y_test": np.zeros(40, int)}, "1 classes; a dataset needs 2"),
])
def test_from_arrays_refuses_bad_arrays_in_one_line(change, message):
    parts = dict(zip(("x_train", "y_train", "x_test", "y_test"), toy_arrays()))
    with pytest.raises(RethinkgenError) as error:
        from_arrays(**change(parts), name="toy")
    assert message in str(error.value) and str(error.value).startswith("toy: ") and "\n" not in str(error.value)


def test_from_arrays_refuses_labels_beyond_the_classes_and_bad_names():
    x_train, y_train, x_test, y_test = toy_arrays()
    with pytest.raises(RethinkgenError, match=r"label 2 is outside 0..1 \(2 classes\)"):
        from_arrays(x_train, y_train, x_test, y_test, classes=["a", "b"])
    with pytest.raises(RethinkgenError, match="name '../x' must be"):
        from_arrays(x_train, y_train, x_test, y_test, name="../x")


def test_train_takes_arrays_and_the_run_id_follows_their_hash(tmp_path):
    parts = toy_arrays()
    data = from_arrays(*parts, name="toy")
    result = train(RunConfig(**SMALL), tmp_path, progress=False, dataset=data)
    assert result.summary["status"] == "complete"
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["dataset"] == "arrays:toy" and saved["data_hash"] == arrays.arrays_sha256(data)
    again = train(RunConfig(**SMALL), tmp_path, progress=False, dataset=from_arrays(*parts, name="toy"))
    assert again.run_id == result.run_id and again.summary == result.summary  # the same data: the same run
    y_train = parts[1].copy()
    y_train[0] = (y_train[0] + 1) % 3
    changed = train(RunConfig(**SMALL), tmp_path, progress=False,
                    dataset=from_arrays(parts[0], y_train, *parts[2:], name="toy"))
    assert changed.run_id != result.run_id and changed.summary["status"] == "complete"


def test_a_config_naming_arrays_needs_them_given():
    with pytest.raises(RethinkgenError, match=r"arrays in memory: pass them with train\(config, dataset="):
        RunConfig(dataset="arrays:toy").validated()
    with pytest.raises(RethinkgenError, match="data_hash applies to an .npz file or in-memory arrays"):
        RunConfig(dataset="digits", data_hash="0" * 64).validated()


def test_an_ensemble_takes_arrays(tmp_path):
    data = from_arrays(*toy_arrays(), name="toy")
    results = train_ensemble([RunConfig(**SMALL, label_noise=p) for p in (0.0, 1.0)], tmp_path, progress=False,
                             dataset=data)
    assert [r.summary["status"] for r in results] == ["complete", "complete"]
    assert {r.config.dataset for r in results} == {"arrays:toy"} and results[0].run_id != results[1].run_id
    alone = train(RunConfig(**SMALL, label_noise=1.0), tmp_path, progress=False, dataset=data)
    assert alone.run_id == results[1].run_id  # the ensemble wrote the very run train would have


# ------------------------------------------------------------------------------------------------- .npz
def test_npz_file_hash_is_in_the_config_and_a_changed_file_makes_a_new_run(tmp_path):
    path = write_npz(tmp_path / "data.npz")
    config = RunConfig(dataset=str(path), **SMALL)
    assert config.resolved().data_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    first = train(config, tmp_path / "runs", progress=False)
    assert first.summary["status"] == "complete"
    assert json.loads((first.run_dir / "config.json").read_text())["data_hash"] == config.resolved().data_hash
    assert train(config, tmp_path / "runs", progress=False).run_id == first.run_id  # unchanged file: reused
    stale = config.resolved()
    x_train, y_train, x_test, y_test = toy_arrays()
    write_npz(path, x_train, (y_train + 1) % 3, x_test, y_test)
    second = train(config, tmp_path / "runs", progress=False)
    assert second.run_id != first.run_id and second.summary["status"] == "complete"
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 2
    with pytest.raises(RethinkgenError, match="data.npz has changed: its SHA-256 is now"):
        train(stale, tmp_path / "runs", progress=False)  # set up on the old file: refused, never reused


@pytest.mark.parametrize("write, message", [
    (lambda p: np.savez(p, x_train=np.zeros((2, 4, 4), np.uint8)), "holds the arrays 'x_train'; an .npz dataset"),
    (lambda p: write_npz(p, extra=np.zeros(3)), "an .npz dataset holds exactly x_train, y_train, x_test, y_test"),
    (lambda p: write_npz(p, *toy_arrays()[:3], np.array([object()] * 40)), "array 'y_test' holds Python objects"),
    (lambda p: p.write_bytes(b"not a zip"), "not an .npz file"),
    (lambda p: write_npz(p, classes=np.array([[1, 2]])), "classes must be a 1-d array of strings"),
])
def test_bad_npz_files_are_refused_in_one_line_naming_the_file(tmp_path, write, message):
    path = tmp_path / "bad.npz"
    write(path)
    with pytest.raises(RethinkgenError) as error:
        load_npz(path)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_npz_sizes_are_checked_before_decompressing(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=np.zeros((1000, 32, 32), np.uint8), y_train=np.zeros(1000, np.int64),
                        x_test=np.zeros((10, 32, 32), np.uint8), y_test=np.zeros(10, np.int64))
    path.write_bytes(buffer.getvalue())
    monkeypatch.setattr(arrays, "MAX_BYTES", 100_000)  # the file is small, its arrays are not
    assert path.stat().st_size < 100_000
    with pytest.raises(RethinkgenError, match=r"big.npz: its arrays take \d+ bytes once decompressed"):
        load_npz(path)
    with zipfile.ZipFile(path) as archive:
        assert sum(member.file_size for member in archive.infolist()) > 100_000


def test_cli_runs_on_an_npz_file_and_refuses_a_bad_one(tmp_path, capsys):
    path = write_npz(tmp_path / "mine.npz")
    code = main(["run", "--dataset", str(path), "--epochs", "1", "--runs", str(tmp_path / "runs"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "[complete]" in out and "labels changed 0.0% (p=0, uniform)" in out
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    code = main(["run", "--dataset", str(tmp_path / "broken.npz"), "--runs", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("rethinkgen: error: ") and "broken.npz" in err and "\n" not in err
    code = main(["run", "--dataset", str(tmp_path / "missing.npz"), "--runs", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"rethinkgen: error: cannot read dataset file {tmp_path / 'missing.npz'}: " \
                                "No such file or directory"


# -------------------------------------------------------------------------------------------- run ids
def test_new_settings_at_their_defaults_leave_existing_run_ids_unchanged():
    # run ids of runs stored before data_hash and label_noise_mode existed
    assert RunConfig().run_id() == "bb9fc11b3ad7"
    assert RunConfig(label_noise=0.5).run_id() == "fd2b0dd9223f"
    assert RunConfig(label_noise=0.5, label_noise_mode="uniform").run_id() == "fd2b0dd9223f"
    assert RunConfig(label_noise=0.5, label_noise_mode="other").run_id() != "fd2b0dd9223f"


# ----------------------------------------------------------------------------------- sweeps and measures
def test_a_sweep_and_the_measures_take_arrays(tmp_path):
    from rethinkgen.experiments.sweep import Sweep, SweepRun, run_sweep
    from rethinkgen.measures.runs import measure_stored_run

    data = from_arrays(*toy_arrays(), name="toy")
    sweep = Sweep("toy", [SweepRun(f"p={p}", RunConfig(**SMALL, label_noise=p)) for p in (0.0, 0.5)])
    outcome = run_sweep(sweep, tmp_path, progress=False, dataset=data, ensemble=2)
    assert [status for _, status, _ in outcome.ran] == ["complete", "complete"]
    run_id = outcome.ran[0][0].config.run_id()
    assert json.loads((tmp_path / run_id / "config.json").read_text())["dataset"] == "arrays:toy"
    assert run_sweep(sweep, tmp_path, progress=False, dataset=data).ran == []  # finished: skipped
    assert measure_stored_run(tmp_path, run_id, ["num_parameters"], "cpu", recompute=True, dataset=data) == ["num_parameters"]
    other = from_arrays(*toy_arrays(seed=1), name="toy")
    with pytest.raises(RethinkgenError, match="did not train on these arrays"):
        measure_stored_run(tmp_path, run_id, ["num_parameters"], "cpu", recompute=True, dataset=other)
    with pytest.raises(RethinkgenError, match="train in this process only"):
        run_sweep(sweep, tmp_path / "other", progress=False, dataset=data, workers=2)


def test_list_datasets_shows_your_npz_file_with_its_data_hash(tmp_path, capsys):
    from rethinkgen.cli import main
    from rethinkgen.data.arrays import file_sha256

    path = tmp_path / "mine.npz"
    write_npz(path)
    assert main(["list", "datasets", "--dataset", str(path)]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and f"{path}  found" in out and f"data hash {file_sha256(path)}" in out
    assert main(["list", "datasets", "--dataset", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rethinkgen: error: ") and "missing.npz" in err and err.count("\n") == 1


def test_list_models_shows_the_families(capsys):
    from rethinkgen.cli import main

    assert main(["list", "models", "--input-shape", "1,8,8"]) == 0
    out = capsys.readouterr().out
    assert "mlp-DxW" in out and "cnn5-K" in out and "Nakkiran" in out
