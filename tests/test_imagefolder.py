"""ImageNet-style folders: listing, layouts, bad input, randomizations fixed across epochs, streamed training."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import interrupt_after
from rethinkgen import data, models
from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.data.dataset import Dataset
from rethinkgen.data.imagefolder import decode, load_imagefolder, write_imagefolder
from rethinkgen.data.randomize import randomize
from rethinkgen.engine.data import DeviceData
from rethinkgen.engine.streaming import StreamedData
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.store import load

CLASSES = ("cat", "dog", "fox")
SIZE = 80
TIMING = {"train_seconds", "wall_seconds", "images_per_second"}


def images(n: int, num_classes: int, size: int, seed: int):
    """Learnable images: a colour per class plus noise; labels cycle through the classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    colours = rng.integers(0, 256, (num_classes, 3, 1, 1))
    noise = rng.integers(-40, 40, (n, 3, size, size))
    return np.clip(colours[labels] + noise, 0, 255).astype(np.uint8), labels


def write_folder(root: Path, classes=CLASSES, n_train=18, n_test=6, size=SIZE, test_split="val") -> Path:
    for split, n, seed in (("train", n_train, 0), (test_split, n_test, 1)):
        x, y = images(n, len(classes), size, seed)
        write_imagefolder(root, split, x, y, classes)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("imagenet"))


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


# ------------------------------------------------------------------------------------------------ listing
def test_load_lists_every_file_with_its_class(folder):
    files = data.load("imagefolder", data_dir=folder, image_size=32)
    assert files.classes == CLASSES and files.num_classes == 3 and files.image_shape == (3, 32, 32)
    assert len(files.y_train) == 18 and len(files.y_test) == 6
    assert list(np.bincount(files.y_train)) == [6, 6, 6] and list(np.bincount(files.y_test)) == [2, 2, 2]
    for split, labels in (("train", files.y_train), ("test", files.y_test)):
        for index, label in enumerate(labels):
            assert files.path(split, index).parent.name == CLASSES[label]
    image = files.image("train", 0)
    assert image.dtype == np.uint8 and image.shape == (3, 32, 32)
    assert files.describe() == "imagefolder: 18 train / 6 test, images 3x32x32, 3 classes"
    assert data.load("imagefolder", data_dir=folder).image_shape == (3, 299, 299)  # Inception V3's size


def test_decode_resizes_the_shorter_side_and_crops_the_centre(tmp_path):
    from PIL import Image

    wide = np.zeros((80, 160, 3), np.uint8)  # left half red, right half blue
    wide[:, :80, 0] = 255
    wide[:, 80:, 2] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    out = decode(tmp_path / "wide.png", 40)  # 160x80 -> 80x40 -> centre 40x40: columns 20..60 of 80
    assert out.shape == (3, 40, 40)
    assert out[0, :, :15].min() > 200 and out[2, :, :15].max() < 50
    assert out[2, :, 25:].min() > 200 and out[0, :, 25:].max() < 50
    Image.fromarray(np.full((10, 10), 77, np.uint8)).save(tmp_path / "gray.png")  # grayscale becomes RGB
    assert decode(tmp_path / "gray.png", 10).tolist() == np.full((3, 10, 10), 77).tolist()


def _same_listing(a, b):
    assert a.classes == b.classes
    assert [a.path("train", i).name for i in range(len(a.y_train))] == \
        [b.path("train", i).name for i in range(len(b.y_train))]
    assert list(a.y_train) == list(b.y_train)
    assert sorted(zip((a.path("test", i).name for i in range(len(a.y_test))), a.y_test)) == \
        sorted(zip((b.path("test", i).name for i in range(len(b.y_test))), b.y_test))


def test_layout_variants_give_the_same_dataset(folder, tmp_path):
    standard = load_imagefolder(folder, image_size=16)
    # the test split called validation/
    validation = tmp_path / "validation-layout"
    shutil.copytree(folder, validation)
    (validation / "val").rename(validation / "validation")
    _same_listing(standard, load_imagefolder(validation, image_size=16))

    # Tiny ImageNet: train/<class>/images/*.JPEG, a boxes file beside them, val/images/ + val_annotations.txt
    tiny = tmp_path / "tiny-imagenet"
    for name in CLASSES:
        shutil.copytree(folder / "train" / name, tiny / "train" / name / "images")
        (tiny / "train" / name / f"{name}_boxes.txt").write_text("ignored\n")
    (tiny / "val" / "images").mkdir(parents=True)
    lines = []
    for name in CLASSES:
        for path in sorted((folder / "val" / name).iterdir()):
            shutil.copy(path, tiny / "val" / "images" / path.name)
            lines.append(f"{path.name}\t{name}\t0\t0\t10\t10")
    (tiny / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    _same_listing(standard, load_imagefolder(tiny, image_size=16))

    # Kaggle's ImageNet: ILSVRC/Data/CLS-LOC/{train/<class>, val/*.JPEG}, LOC_val_solution.csv above it
    kaggle = tmp_path / "kaggle"
    cls_loc = kaggle / "ILSVRC" / "Data" / "CLS-LOC"
    shutil.copytree(folder / "train", cls_loc / "train")
    (cls_loc / "val").mkdir()
    rows = ["ImageId,PredictionString"]
    for name in CLASSES:
        for path in sorted((folder / "val" / name).iterdir()):
            shutil.copy(path, cls_loc / "val" / path.name)
            rows.append(f"{path.stem},{name} 1 2 30 40 {name} 5 5 20 20")
    (kaggle / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    _same_listing(standard, load_imagefolder(kaggle, image_size=16))


def test_a_subset_is_stratified_and_keeps_files_with_their_labels(folder):
    files = load_imagefolder(folder, image_size=16)
    small = files.subset(9, seed=0, n_test=3)
    assert list(np.bincount(small.y_train)) == [3, 3, 3] and list(np.bincount(small.y_test)) == [1, 1, 1]
    for index, label in enumerate(small.y_train):
        assert small.path("train", index).parent.name == CLASSES[label]
    assert list(files.subset_indices(9, 0)) == list(memory_subset_indices(files.y_train, 9, 0))
    assert files.subset(9, seed=1).content_hash() != small.content_hash()


def memory_subset_indices(labels, n, seed):
    x = np.zeros((len(labels), 1, 1, 1), np.uint8)
    return Dataset("d", x, labels, x[:1], labels[:1], CLASSES).subset_indices(n, seed)


# ------------------------------------------------------------------------------------------------ bad input
def _error(*args, **kwargs) -> str:
    with pytest.raises(RethinkgenError) as info:
        load_imagefolder(*args, **kwargs).image("train", 0)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_and_malformed_folders_are_named(folder, tmp_path):
    assert "does not exist" in _error(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "no train/ folder in" in _error(tmp_path / "empty")
    (tmp_path / "noclasses" / "train").mkdir(parents=True)
    assert "has no class folders" in _error(tmp_path / "noclasses")
    no_val = tmp_path / "noval"
    shutil.copytree(folder / "train", no_val / "train")
    assert "no test split" in _error(no_val) and "validation" in _error(no_val)
    assert "nothing to download" in _error(folder, download=True)
    assert "image size 0 must be an integer >= 1" in _error(folder, image_size=0)


def test_an_empty_class_a_stray_file_and_a_corrupt_image_are_named(folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(folder, root)
    (root / "train" / "emu").mkdir()
    message = _error(root)
    assert "emu" in message and "holds no images" in message
    (root / "train" / "emu").rmdir()

    (root / "train" / "cat" / "model.bin").write_bytes(b"\0\1")
    message = _error(root)
    assert "model.bin is not an image file" in message and ".jpeg" in message
    (root / "train" / "cat" / "model.bin").unlink()
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0")  # hidden files are skipped
    assert len(load_imagefolder(root).y_train) == 18

    (root / "val" / "wolf").mkdir()
    (root / "val" / "wolf" / "a.JPEG").write_bytes((root / "val" / "cat").iterdir().__next__().read_bytes())
    assert "no training class of that name" in _error(root)
    shutil.rmtree(root / "val" / "wolf")

    victim = sorted((root / "train" / "cat").glob("*.JPEG"))[0]
    victim.write_text("this is not a JPEG")
    message = _error(root)
    assert str(victim) in message and "not a readable image" in message


def test_a_flat_test_folder_needs_a_label_file_naming_every_image(folder, tmp_path):
    root = tmp_path / "flat"
    shutil.copytree(folder / "train", root / "train")
    (root / "val").mkdir()
    first = next((folder / "val" / "dog").iterdir())
    shutil.copy(first, root / "val" / first.name)
    assert "no label file" in _error(root)
    (root / "val" / "val_annotations.txt").write_text("other.JPEG\tdog\n")
    assert f"{first.name} has no label" in _error(root)
    (root / "val" / "val_annotations.txt").write_text(f"x.JPEG\tdog\n{first.name}\twolf\n")
    assert "class 'wolf' is not a training class" in _error(root)


def test_image_size_is_refused_for_other_sources():
    with pytest.raises(RethinkgenError, match="image_size 64 applies only to the imagefolder dataset"):
        RunConfig(dataset="digits", image_size=64).validated()
    with pytest.raises(RethinkgenError, match="does not take option"):
        data.load_for_run("cifar10", image_size=64)


# --------------------------------------------------------------------------------- randomizations per image
def _epoch(streamed: StreamedData, order: list[int]):
    """Images and labels of one epoch in ``order``, put back in file order."""
    x, y = zip(*[(images, labels) for images, labels in streamed._loader("train", 4, order)])
    x, y = torch.cat(x), torch.cat(y)
    back = np.argsort(order)
    return x[back], y[back]


@pytest.mark.parametrize("inputs", ["original", "shuffled-pixels", "random-pixels", "gaussian"])
def test_labels_and_pixels_are_the_same_in_every_epoch_and_worker(folder, inputs):
    clean = load_imagefolder(folder, image_size=24)
    noisy, record = randomize(clean, label_noise=0.7, inputs=inputs, seed=3)
    config = RunConfig(dataset="imagefolder", workers=2).validated()
    streamed = StreamedData(clean, noisy, record, config, torch.device("cpu"))
    x1, y1 = _epoch(streamed, list(range(18)))
    x2, y2 = _epoch(streamed, list(np.random.default_rng(5).permutation(18)))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert y1.tolist() == list(noisy.y_train) and len(record.changed) > 0
    original = torch.from_numpy(np.stack([clean.image("train", i) for i in range(18)]))
    if inputs == "original":
        assert torch.equal(x1, original)
    else:
        assert not torch.equal(x1, original)
    if inputs in ("shuffled-pixels", "random-pixels"):  # the same pixels, moved
        flat = lambda x: x.flatten(2).sort(dim=2).values  # noqa: E731
        assert torch.equal(flat(x1), flat(original))
    if inputs == "gaussian":  # the moments of all 18 training images (fewer than the sample size)
        moments = original.double().mean(dim=(0, 2, 3))
        np.testing.assert_allclose(record.gaussian_mean, moments.numpy())


def test_streamed_randomization_reuses_the_in_memory_draws(folder):
    """Label noise and the pixel permutation are those the in-memory randomization draws for the same data."""
    files = load_imagefolder(folder, image_size=16)
    decoded = {split: np.stack([files.image(split, i) for i in range(len(y))])
               for split, y in (("train", files.y_train), ("test", files.y_test))}
    memory = Dataset("imagefolder", decoded["train"], files.y_train, decoded["test"], files.y_test, files.classes)
    for inputs in ("shuffled-pixels", "random-pixels"):
        streamed, streamed_record = randomize(files, 0.5, inputs, seed=7, corrupt_test_labels=True)
        in_memory, memory_record = randomize(memory, 0.5, inputs, seed=7, corrupt_test_labels=True)
        assert list(streamed.y_train) == list(in_memory.y_train) and list(streamed.y_test) == list(in_memory.y_test)
        for name in ("replaced", "changed", "test_replaced", "test_changed"):
            assert list(getattr(streamed_record, name)) == list(getattr(memory_record, name))
        if inputs == "shuffled-pixels":
            assert list(streamed_record.permutation) == list(memory_record.permutation)
            assert np.array_equal(np.stack([streamed.image("test", i) for i in range(6)]), in_memory.x_test)
    again, record = randomize(files, 0.5, "random-pixels", seed=7)
    assert record.dataset_hash == randomize(files, 0.5, "random-pixels", seed=7)[1].dataset_hash
    assert record.dataset_hash != randomize(files, 0.5, "random-pixels", seed=8)[1].dataset_hash


def test_streamed_batches_and_metrics_equal_those_of_the_same_data_on_the_device(tmp_path):
    """Seven classes, so that top-5 accuracy is measured too."""
    classes = tuple(f"c{k}" for k in range(7))
    root = write_folder(tmp_path / "seven", classes, n_train=21, n_test=14, size=12)
    files = load_imagefolder(root, image_size=12)
    decoded = {split: np.stack([files.image(split, i) for i in range(len(y))])
               for split, y in (("train", files.y_train), ("test", files.y_test))}
    memory = Dataset("imagefolder", decoded["train"], files.y_train, decoded["test"], files.y_test, classes)
    config = RunConfig(dataset="imagefolder", augment=("crop", "flip"), workers=0).validated()
    noisy_files, record = randomize(files, 0.5, "shuffled-pixels", seed=1)
    noisy_memory, memory_record = randomize(memory, 0.5, "shuffled-pixels", seed=1)
    streamed = StreamedData(files, noisy_files, record, config, torch.device("cpu"))
    device = DeviceData(memory, noisy_memory, memory_record, config, torch.device("cpu"))
    assert streamed.input_shape == device.input_shape and streamed.num_train == device.num_train == 21
    order = torch.randperm(21, generator=torch.Generator().manual_seed(0))
    pairs = zip(streamed.batches(order, torch.Generator().manual_seed(1), 8),
                device.batches(order, torch.Generator().manual_seed(1), 8))
    for (x_streamed, y_streamed, n_streamed), (x_device, y_device, n_device) in pairs:
        assert torch.equal(x_streamed, x_device) and torch.equal(y_streamed, y_device) and n_streamed == n_device
    torch.manual_seed(0)
    model = models.create_model("mlp-1x512", device.input_shape, 7)
    got, expected = streamed.evaluate(model, 5), device.evaluate(model, 1024)
    assert got.keys() == expected.keys() and expected["test_top5_accuracy"] is not None
    assert got == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------------------------------------ training
def test_a_streamed_run_end_to_end_through_the_command_line(folder, tmp_path, capsys):
    argv = ["run", "--dataset", "imagefolder", "--data-dir", str(folder), "--image-size", "32", "--model",
            "mlp-1x512", "--epochs", "3", "--batch-size", "8", "--label-noise", "0.5", "--workers", "2",
            "--augment", "flip", "--runs", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[complete]" in out and "train accuracy" in out
    frame = load(tmp_path)
    assert len(frame) == 1 and frame.loc[0, "dataset"] == "imagefolder" and frame.loc[0, "image_size"] == 32
    run_dir = Path(frame.loc[0, "run_dir"])
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics] == [3, 6, 9]  # 18 images in batches of 8
    assert metrics[-1]["train_loss"] != metrics[0]["train_loss"]  # the weights moved
    assert metrics[0]["train_top5_accuracy"] is None  # 3 classes: top-5 is always right, so not recorded
    record = json.loads((run_dir / "randomization.json").read_text())
    assert record["n_train"] == 18 and record["label_noise"] == 0.5 and record["n_changed"] > 0
    assert main(argv) == 0 and "already complete" in capsys.readouterr().out


def test_workers_do_not_change_a_run_and_a_streamed_run_resumes_exactly(folder, tmp_path):
    base = dict(dataset="imagefolder", data_dir=str(folder), image_size=16, model="mlp-1x512", epochs=3,
                batch_size=8, label_noise=0.5, inputs="random-pixels", augment=("crop",), dropout=0.2, log_every=1)
    reference = train(RunConfig(**base, workers=0), tmp_path / "zero", progress=False)
    two = train(RunConfig(**base, workers=2), tmp_path / "two", progress=False)
    assert reference.run_id == two.run_id  # workers are not part of what a run is
    assert without_timing(reference.metrics) == without_timing(two.metrics) and reference.steps == two.steps

    with pytest.raises(KeyboardInterrupt):
        train(RunConfig(**base, workers=2), tmp_path / "resumed", progress=False, on_epoch_end=interrupt_after(2))
    resumed = train(RunConfig(**base, workers=2), tmp_path / "resumed", progress=False)
    assert without_timing(resumed.metrics) == without_timing(reference.metrics)
    assert resumed.steps == reference.steps


def test_a_corrupt_image_stops_a_run_with_one_line(folder, tmp_path, capsys):
    root = tmp_path / "corrupt"
    shutil.copytree(folder, root)
    victim = sorted((root / "train" / "dog").glob("*.JPEG"))[1]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated
    code = main(["run", "--dataset", "imagefolder", "--data-dir", str(root), "--image-size", "16", "--epochs", "1",
                 "--workers", "2", "--runs", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("rethinkgen: error: ") and str(victim) in err and "not a readable image" in err


def test_the_datasets_listing_finds_a_folder(folder, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path / "cache"))
    assert main(["list", "datasets", "--data-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("imagefolder "))
    assert line.split() == ["imagefolder", "found", str(folder)]
    assert "18 train / 6 test, images 3x299x299, 3 classes" in out
    assert data.SOURCES["imagefolder"].locate() is None  # listed as missing without --data-dir
    (tmp_path / "cache" / "imagenet").mkdir(parents=True)
    shutil.copytree(folder / "train", tmp_path / "cache" / "imagenet" / "train")
    assert data.SOURCES["imagefolder"].locate() == tmp_path / "cache" / "imagenet"  # found in the cache
