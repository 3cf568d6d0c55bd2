"""Inception V3 from torchvision (an optional extra): built, counted, and trained on a small image folder.

Marked ``vision``: they need torchvision, so they are skipped without it; CI runs them in a second venv.
"""

import sys

import pytest

from rethinkgen import models
from rethinkgen.errors import RethinkgenError


def test_without_torchvision_one_line_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    monkeypatch.setitem(sys.modules, "torchvision.models.inception", None)
    with pytest.raises(RethinkgenError) as info:
        models.create_model("inception-v3", (3, 75, 75), 10)
    assert str(info.value) == ("model 'inception-v3' needs torchvision, which is not installed: "
                               "pip install 'rethinkgen[vision]'")
    assert "inception-v3" in models.model_names()


@pytest.mark.vision
def test_parameter_count_dropout_channels_and_minimum_size():
    pytest.importorskip("torchvision")
    net = models.create_model("inception-v3", (3, 75, 75), 1000)  # the count does not depend on the size
    assert models.count_parameters(net) == 23_834_568  # torchvision's Inception V3 without the auxiliary head
    assert net.AuxLogits is None and net.dropout.p == 0.0
    assert models.create_model("inception-v3", (3, 75, 75), 10, dropout=0.2).dropout.p == 0.2
    gray = models.create_model("inception-v3", (1, 80, 80), 7)  # any number of channels
    assert gray.Conv2d_1a_3x3.conv.in_channels == 1
    with pytest.raises(RethinkgenError, match="needs images of at least 75x75, got 74x74"):
        models.create_model("inception-v3", (3, 74, 74), 10)
    assert models.default_lr("inception-v3") == 0.01


@pytest.mark.vision
def test_inception_v3_trains_on_an_image_folder_with_top5(tmp_path, capsys):
    pytest.importorskip("torchvision")
    import json

    from rethinkgen.cli import main
    from test_imagefolder import write_folder

    folder = write_folder(tmp_path / "seven", tuple(f"c{k}" for k in range(7)), n_train=14, n_test=7, size=80)
    argv = ["run", "--dataset", "imagefolder", "--data-dir", str(folder), "--image-size", "80", "--crop", "75",
            "--model", "inception-v3", "--epochs", "1", "--batch-size", "7", "--dropout", "0.2",
            "--weight-decay", "4e-5", "--augment", "crop", "flip", "--workers", "2", "--runs", str(tmp_path / "runs"),
            "--quiet"]
    assert main(argv) == 0
    assert "[complete]" in capsys.readouterr().out
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["steps"] == 2 and summary["num_classes"] == 7 and summary["parameters"] > 21_000_000
    for key in ("train_top5_accuracy", "test_top5_accuracy", "best_test_top5_accuracy"):
        assert 0 <= summary[key] <= 1, key
    assert summary["test_top5_accuracy"] >= summary["test_accuracy"]
