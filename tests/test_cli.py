"""The command line: flags, config files, the demo, listings, and one clear line for each bad input."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.errors import RethinkgenError
from rethinkgen.store import load

TINY = ["--subset", "150", "--test-subset", "60", "--epochs", "2", "--quiet"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_trains_and_a_second_run_finds_it_complete(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "run", "--runs", str(tmp_path), "--label-noise", "1", *TINY)
    assert code == 0 and "[complete]" in out and "train accuracy" in out
    frame = load(tmp_path)
    assert len(frame) == 1 and frame.loc[0, "label_noise"] == 1.0 and frame.loc[0, "epochs"] == 2
    code, out, _ = run_cli(capsys, "run", "--runs", str(tmp_path), "--label-noise", "1", *TINY)
    assert code == 0 and "already complete" in out and len(load(tmp_path)) == 1


def test_config_file_with_flags_overriding_it(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: digits\nlabel-noise: 0.5\ninputs: shuffled-pixels\nepochs: 3\n"
                      "augment: [flip]\nstop_at_fit: false\n")
    code, _, _ = run_cli(capsys, "run", "--config", str(config), "--epochs", "1", "--runs", str(tmp_path / "runs"),
                         "--subset", "100", "--quiet")
    assert code == 0
    row = load(tmp_path / "runs").iloc[0]
    assert row["label_noise"] == 0.5 and row["inputs"] == "shuffled-pixels" and row["epochs"] == 1
    assert list(row["augment"]) == ["flip"]


def test_json_config_gives_the_same_run_as_flags(tmp_path):
    config = tmp_path / "run.json"
    config.write_text('{"label_noise": 0.2, "model": "mlp-3x512", "augment": ["crop", "flip"]}')
    from_file = RunConfig.from_file(config)
    from_flags = RunConfig.from_mapping({"label_noise": 0.2, "model": "mlp-3x512", "augment": "crop,flip"})
    assert from_file.run_id() == from_flags.run_id()


def test_every_setting_is_a_flag():
    from dataclasses import fields

    from rethinkgen.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for f in fields(RunConfig):
        assert "--" + f.name.replace("_", "-") in help_text


def test_boolean_flags_can_be_switched_off(tmp_path):
    config = tmp_path / "on.yaml"
    config.write_text("stop_at_fit: true\ncorrupt_test_labels: true\n")
    from rethinkgen.cli import build_parser
    from rethinkgen.cli.train import _config_from_args

    args = build_parser().parse_args(["run", "--config", str(config), "--no-stop-at-fit"])
    resolved = _config_from_args(args)
    assert resolved.stop_at_fit is False and resolved.corrupt_test_labels is True


def test_demo_prints_a_table_and_writes_a_figure(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "demo", "--runs", str(tmp_path), "--subset", "120", "--test-subset", "50",
                           "--epochs", "3", "--quiet")
    assert code == 0
    for label in ("true labels", "label noise 0.5", "random labels", "shuffled pixels", "random pixels", "gaussian"):
        assert f"| {label} |" in out
    figure, table = tmp_path / "demo-digits-mlp-1x512.png", tmp_path / "demo-digits-mlp-1x512.md"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.with_suffix(".svg").is_file()
    assert "| random labels | 1 | original |" in table.read_text()
    assert len(load(tmp_path)) == 6


def test_datasets_and_models_listings(capsys):
    code, out, _ = run_cli(capsys, "list", "datasets")
    assert code == 0 and "digits" in out and "1347 train / 450 test" in out and "cifar10" in out
    code, out, _ = run_cli(capsys, "list", "models")
    assert code == 0 and "1,649,402" in out and "1,387,786" in out and "1,209,866" in out and "1,735,178" in out
    code, out, _ = run_cli(capsys, "list", "models", "--input-shape", "1,8,8")
    assert code == 0 and "38,410" in out


@pytest.fixture
def corrupt_idx_dir(tmp_path):
    import numpy as np

    from rethinkgen.data.idx import write_idx

    directory = tmp_path / "fmnist"
    directory.mkdir()
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(10, np.uint8))
    write_idx(directory / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    path = directory / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    return directory


BAD_INPUTS = [
    (["--model", "resnet50"], "unknown model 'resnet50'; allowed: alexnet-small"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'; allowed: digits"),
    (["--inputs", "noise"], "argument --inputs: unknown value 'noise'; allowed: original"),
    (["--label-noise", "1.5"], "label_noise 1.5 is outside [0, 1]"),
    (["--label-noise", "-0.2"], "label_noise -0.2 is outside [0, 1]"),
    (["--augment", "mixup"], "argument --augment: unknown value 'mixup'; allowed: crop, flip"),
    (["--augment", "crop,mixup"], "argument --augment: unknown value 'mixup'"),
    (["--epochs", "0"], "epochs 0 must be an integer >= 1"),
    (["--lr-decay", "1.5"], "lr_decay 1.5 is outside (0, 1]"),
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir does not exist"),
    (["--subset", "99999"], "subset size 99999 must be an integer in 1..1347"),
    (["--device", "tpu"], "device 'tpu'"),
]


@pytest.mark.parametrize("flags, message", BAD_INPUTS)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, flags, message):
    code, out, err = run_cli(capsys, "run", "--runs", str(tmp_path), "--quiet", *flags)
    assert code == 2
    assert err.startswith("rethinkgen: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_data_file_is_named(tmp_path, capsys, corrupt_idx_dir):
    code, _, err = run_cli(capsys, "run", "--runs", str(tmp_path / "runs"), "--dataset", "fashion-mnist",
                           "--data-dir", str(corrupt_idx_dir), "--quiet")
    assert code == 2 and "train-images-idx3-ubyte: truncated" in err


def test_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("label_noise: 0.5\nlearning_rate: 0.1\n")
    code, _, err = run_cli(capsys, "run", "--config", str(config), "--runs", str(tmp_path))
    assert code == 2 and "unknown config key 'learning_rate'" in err and "allowed:" in err
    config.write_text("[1, 2]")
    code, _, err = run_cli(capsys, "run", "--config", str(config), "--runs", str(tmp_path))
    assert code == 2 and "must hold a mapping" in err
    code, _, err = run_cli(capsys, "run", "--config", str(tmp_path / "missing.yaml"), "--runs", str(tmp_path))
    assert code == 2 and "cannot read config file" in err


def test_model_that_cannot_take_the_input_shape(tmp_path, capsys, monkeypatch):
    (tmp_path / "fixed_model.py").write_text(
        "from torch import nn\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = run_cli(capsys, "run", "--model", "fixed_model:build", "--runs", str(tmp_path / "runs"), "--quiet")
    assert code == 2 and "cannot take input shape (1, 8, 8)" in err


def test_unwritable_runs_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(capsys, "run", "--runs", str(blocker / "runs"), "--quiet")
    assert code == 2 and "cannot be written" in err


def digest(folder: Path) -> dict:
    """Every run file's hash, and the index's rows (its bytes may move between the WAL and the main file)."""
    files = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith("index.sqlite")}
    return {"files": files, "index": load(folder).to_json()}


def test_bad_input_leaves_existing_runs_untouched(tmp_path, capsys):
    assert run_cli(capsys, "run", "--runs", str(tmp_path), *TINY)[0] == 0
    before = digest(tmp_path)
    for flags, _ in BAD_INPUTS:
        assert run_cli(capsys, "run", "--runs", str(tmp_path), "--quiet", *flags)[0] == 2
    assert digest(tmp_path) == before


def test_console_script_exits_non_zero_without_traceback(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "rethinkgen", "run", "--label-noise", "7", "--runs", str(tmp_path)],
                               capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.strip() == "rethinkgen: error: label_noise 7.0 is outside [0, 1]"


def test_config_rejects_wrong_types():
    with pytest.raises(RethinkgenError, match="epochs 'ten' must be an integer"):
        RunConfig.from_mapping({"epochs": "ten"})
    with pytest.raises(RethinkgenError, match="stop_at_fit 'yes' must be true or false"):
        RunConfig.from_mapping({"stop_at_fit": "yes"})


def test_run_id_ignores_device_and_data_location_but_not_seeds():
    base = RunConfig()
    assert base.run_id() == RunConfig(device="cpu", data_dir="/x").run_id()
    assert base.run_id() == RunConfig(init_seed=0, order_seed=0, randomization_seed=0, lr=0.01).run_id()
    assert base.run_id() != RunConfig(seed=1).run_id() != RunConfig(label_noise=0.1).run_id()


def test_run_ids_of_stored_runs_stay_stable():
    """Folders already on disk are found again: settings added later do not rename them at their defaults."""
    assert RunConfig().run_id() == "bb9fc11b3ad7"
    assert RunConfig(label_noise=0.5, model="alexnet-small").run_id() == "884bc6085735"


def test_demo_exits_non_zero_when_its_runs_fail(tmp_path, capsys, monkeypatch):
    from rethinkgen.experiments import executors

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(executors, "train", broken)
    code, _, err = run_cli(capsys, "demo", "--runs", str(tmp_path), "--subset", "60", "--epochs", "1", "--quiet")
    assert code == 2 and "6 demo run(s) failed" in err and "disk on fire" in err
