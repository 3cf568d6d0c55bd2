"""Hugging Face datasets: hf:PATH folders (save_to_disk, parquet), detection, the cache, run ids, errors."""

import importlib.util
import json

import numpy as np
import pytest

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.data import arrays, from_arrays, huggingface
from rethinkgen.errors import RethinkgenError


@pytest.fixture
def hf(tmp_path, monkeypatch):
    """The datasets package, offline, with its cache and rethinkgen's under ``tmp_path``."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-home" / "datasets"))
    monkeypatch.setenv(huggingface.CACHE_ENV, str(tmp_path / "cache"))
    huggingface._hashes.clear()
    return datasets


def toy(datasets, n_train=30, n_test=12, seed=0, labels="class", channels=3, splits=("train", "test")):
    """A DatasetDict of random 8x8 images (PIL, RGB or grayscale) and labels 0..2, and the raw arrays."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    names = ["cat", "dog", "eel"]
    raw, parts = {}, {}
    for split, n in zip(splits, (n_train, n_test)):
        shape = (n, 8, 8, 3) if channels == 3 else (n, 8, 8)
        x, y = rng.integers(0, 256, shape, dtype=np.uint8), np.arange(n) % 3
        raw[split] = (x, y)
        label_feature = datasets.ClassLabel(names=names) if labels == "class" else datasets.Value("string")
        parts[split] = datasets.Dataset.from_dict(
            {"picture": [Image.fromarray(image) for image in x],
             "kind": [int(v) if labels == "class" else names[v] for v in y]},
            features=datasets.Features({"picture": datasets.Image(), "kind": label_feature}))
    return datasets.DatasetDict(parts), raw, names


def test_a_saved_folder_decodes_to_the_arrays_from_arrays_builds(hf, tmp_path):
    source, raw, names = toy(hf)
    source.save_to_disk(str(tmp_path / "saved"))
    data, data_hash = huggingface.load_hf(f"hf:{tmp_path / 'saved'}")
    expected = from_arrays(*raw["train"], *raw["test"], classes=names)
    assert data.x_train.shape == (30, 3, 8, 8) and data.classes == ("cat", "dog", "eel")
    np.testing.assert_array_equal(data.x_test, expected.x_test)
    np.testing.assert_array_equal(data.y_train, expected.y_train)
    assert data_hash == arrays.arrays_sha256(expected)


def test_a_parquet_folder_and_string_labels_and_the_cache(hf, tmp_path, monkeypatch):
    source, raw, names = toy(hf, labels="text", channels=1)
    for split, part in source.items():
        part.to_parquet(str(tmp_path / "pq" / f"{split}-00000-of-00001.parquet"))
    data, data_hash = huggingface.load_hf(f"hf:{tmp_path / 'pq'}")
    assert data.x_train.shape == (30, 1, 8, 8) and data.classes == tuple(names)  # text labels in sorted order
    np.testing.assert_array_equal(data.x_train[:, 0], raw["train"][0])
    cached = sorted(p.suffix for p in (tmp_path / "cache").iterdir())
    assert cached == [".json", ".npz"]
    huggingface._hashes.clear()
    monkeypatch.setattr(huggingface, "decode", lambda *a: pytest.fail("decoded again instead of using the cache"))
    again, again_hash = huggingface.load_hf(f"hf:{tmp_path / 'pq'}")
    assert again_hash == data_hash
    np.testing.assert_array_equal(again.x_test, data.x_test)


def test_columns_and_splits_are_detected_or_set(hf, tmp_path):
    source, _, _ = toy(hf, splits=("training", "validation"))
    source = source.map(lambda row: {"other": row["picture"]}).cast_column("other", hf.Image())
    source.save_to_disk(str(tmp_path / "two"))
    name = f"hf:{tmp_path / 'two'}"
    with pytest.raises(RethinkgenError, match="no split named train.*its splits: training, validation; set train_split"):
        huggingface.load_hf(name)
    with pytest.raises(RethinkgenError, match="cannot tell which column holds the images .*set image_column"):
        huggingface.load_hf(name, {"train_split": "training"})
    data, _ = huggingface.load_hf(name, {"train_split": "training", "image_column": "other", "label_column": "kind"})
    assert len(data.y_train) == 30 and len(data.y_test) == 12  # the test split fell back to validation
    with pytest.raises(RethinkgenError, match="has no split 'nope' \\(test_split\\); its splits: training, validation"):
        huggingface.load_hf(name, {"train_split": "training", "image_column": "other", "test_split": "nope"})


def test_a_run_records_the_data_hash_and_changed_data_makes_a_new_run(hf, tmp_path, capsys):
    source, _, _ = toy(hf)
    folder = tmp_path / "saved"
    source.save_to_disk(str(folder))
    command = ["run", "--dataset", f"hf:{folder}", "--epochs", "1", "--measures", "none", "--quiet",
               "--runs", str(tmp_path / "runs")]
    assert main(command) == 0
    first = capsys.readouterr().out.split()[1]
    config = json.loads((tmp_path / "runs" / first / "config.json").read_text())
    assert config["dataset"] == f"hf:{folder}" and len(config["data_hash"]) == 64
    changed = source["train"].map(lambda row, i: {"kind": (row["kind"] + (i == 0)) % 3}, with_indices=True)
    hf.DatasetDict(train=changed, test=source["test"]).save_to_disk(str(tmp_path / "saved2"))
    folder.rename(tmp_path / "old")
    (tmp_path / "saved2").rename(folder)
    huggingface._hashes.clear()
    assert main(command) == 0
    second = capsys.readouterr().out.split()[1]
    assert second != first


def test_bad_names_and_options_are_refused_in_one_line():
    with pytest.raises(RethinkgenError, match="image_column applies only to Hugging Face datasets"):
        RunConfig(dataset="digits", image_column="img").validated()
    with pytest.raises(RethinkgenError, match="after hf: give OWNER/NAME"):
        RunConfig(dataset="hf:bad name!").validated()
    with pytest.raises(RethinkgenError, match="train_split 'a b' must be a split name"):
        RunConfig(dataset="hf:owner/name", train_split="a b").validated()


def test_a_missing_folder_is_refused_in_one_line(hf, capsys):
    assert main(["run", "--dataset", "hf:/no/such/folder", "--quiet"]) == 2
    assert "dataset folder /no/such/folder does not exist" in capsys.readouterr().err


def test_without_the_extra_one_line_says_what_to_install(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a))
    (tmp_path / "folder").mkdir()
    assert main(["run", "--dataset", f"hf:{tmp_path / 'folder'}", "--runs", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rethinkgen: error: " + huggingface.MISSING and "pip install 'rethinkgen[hf]'" in err
