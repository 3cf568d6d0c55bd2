"""Bad and hostile input: each case gives one line `rethinkgen: error: ...` naming the file or value and what
is allowed, exit status 2, no traceback, and nothing written before the refusal."""

import gzip
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rethinkgen import models, settings_file
from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.data import idx as idx_mod, load
from rethinkgen.errors import SHOWN_LENGTH, RethinkgenError, shown
from rethinkgen.experiments.sweep import expand, load_spec, run_sweep

TINY = ["--subset", "100", "--test-subset", "50", "--epochs", "1", "--quiet"]
IDX_STEMS = idx_mod.FILES


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(capsys, *argv, fragments=()):
    """The command exits 2 with exactly one error line holding every fragment; returns that line."""
    code, _, err = run_cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rethinkgen: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_folders(runs: Path) -> list[Path]:
    return [p for p in runs.iterdir() if p.is_dir() and p.name != "sweeps"] if runs.exists() else []


# ------------------------------------------------------------------------------------------------ IDX
def _write_idx_dir(directory: Path, n=20, h=5, w=4) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n, h, w), dtype=np.uint8), "y_train": np.arange(n, dtype=np.uint8) % 10,
              "x_test": rng.integers(0, 256, (8, h, w), dtype=np.uint8), "y_test": np.arange(8, dtype=np.uint8) % 10}
    paths = {}
    for key, stem in IDX_STEMS.items():
        paths[key] = directory / (stem + ".gz")
        idx_mod.write_idx(paths[key], arrays[key])
    return paths


def test_idx_header_whose_dimensions_overflow_is_refused(tmp_path):
    paths = _write_idx_dir(tmp_path)
    header = bytes([0, 0, 8, 3]) + (0xFFFFFFFF).to_bytes(4, "big") * 3
    paths["x_train"].write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(RethinkgenError) as info:
        load("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "(4294967295, 4294967295, 4294967295)" in message
    assert "at most 4,294,967,296" in message  # the limit, and the true (not overflowed) product
    assert f"{0xFFFFFFFF ** 3:,}" in message


def test_idx_gzip_that_expands_beyond_its_header_is_read_only_as_far_as_promised(tmp_path, monkeypatch):
    paths = _write_idx_dir(tmp_path)
    header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in (2, 3, 4))
    with gzip.open(paths["x_test"], "wb") as handle:  # 24 bytes promised, 64 MiB inside (65 kB on disk)
        handle.write(header)
        for _ in range(64):
            handle.write(bytes(1 << 20))
    reads = []
    real = idx_mod._read_at_most
    monkeypatch.setattr(idx_mod, "_read_at_most", lambda handle, size: reads.append(size) or real(handle, size))
    with pytest.raises(RethinkgenError, match=r"t10k-images-idx3-ubyte.gz: too long: .* = 24 bytes of data, "
                                              r"file has more than 24"):
        load("mnist", data_dir=tmp_path)
    assert 25 in reads and max(reads) < 1 << 20  # the promise plus one byte, never the whole stream


def test_idx_bomb_through_the_cli_writes_no_run(tmp_path, capsys):
    paths = _write_idx_dir(tmp_path / "data")
    header = bytes([0, 0, 8, 1]) + (0xFFFFFFFF).to_bytes(4, "big")
    paths["y_train"].write_bytes(gzip.compress(header))
    assert_refused(capsys, "run", "--dataset", "mnist", "--data-dir", tmp_path / "data", "--runs", tmp_path / "runs",
                   "--quiet", fragments=["train-labels-idx1-ubyte.gz: truncated", "4294967295 bytes"])
    assert run_folders(tmp_path / "runs") == []


# ------------------------------------------------------------------------------------------- config files
def _bomb(levels: int) -> str:
    parts = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "model: [" + ", ".join(parts) + "]\n"


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path, capsys, command):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(7) if command == "run" else "base:\n  " + _bomb(7))  # 9^7 = 4.8 million values
    argv = ["run", "--config", path] if command == "run" else ["sweep", path]
    line = assert_refused(capsys, *argv, "--runs", tmp_path / "runs",
                          fragments=[f"{path}, line {1 if command == 'run' else 2}: ", "aliases are not allowed"])
    assert len(line) < 300
    assert not (tmp_path / "runs").exists()


def test_a_single_alias_is_refused_too(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("epochs: &n 3\nlog_every: *n\n")
    with pytest.raises(RethinkgenError, match="alias.yaml, line 1: .*aliases are not allowed"):
        RunConfig.from_file(path)


@pytest.mark.parametrize("depth, fragment", [(50_000, "nesting depth"), (40, "nested more than 32 levels deep")])
def test_deeply_nested_yaml_is_refused(tmp_path, capsys, depth, fragment):
    path = tmp_path / "deep.yaml"
    path.write_text("model: " + "[" * depth + "]" * depth + "\n")
    assert_refused(capsys, "run", "--config", path, "--runs", tmp_path / "runs", fragments=[str(path), fragment])


def test_config_that_is_not_utf8_is_refused(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("epochs: 2\nmodel: caf\xe9\n".encode("latin-1"))
    assert_refused(capsys, "run", "--config", path, "--runs", tmp_path / "runs",
                   fragments=[str(path), "not UTF-8", "0xe9 on line 2"])


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_settings_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, capsys, command):
    path = tmp_path / "big.yaml"
    path.write_text("epochs: 2\n# " + "x" * settings_file.MAX_BYTES + "\n")
    size = path.stat().st_size
    argv = ["run", "--config", path] if command == "run" else ["sweep", path]
    assert_refused(capsys, *argv, "--runs", tmp_path / "runs",
                   fragments=[str(path), f"{size:,} bytes", "limit is 1,048,576 bytes"])


def test_a_file_just_under_the_limit_is_read(tmp_path):
    path = tmp_path / "padded.yaml"
    path.write_text("epochs: 2\n# " + "x" * (settings_file.MAX_BYTES - 20) + "\n")
    assert RunConfig.from_file(path).epochs == 2


def test_every_echoed_value_is_cut_to_a_readable_length(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(f"model: {'x' * 100_000}\n")
    line = assert_refused(capsys, "run", "--config", path, "--runs", tmp_path / "runs", fragments=["unknown model"])
    assert len(line) < 400 and "..." in line
    path.write_text(f"? {'k' * 100_000}\n: 1\n")  # an explicit key: a plain one has at most 1024 characters
    line = assert_refused(capsys, "run", "--config", path, "--runs", tmp_path / "runs", fragments=["unknown config key"])
    assert "k" * (SHOWN_LENGTH + 1) not in line


def test_shown_is_bounded_for_any_value():
    nested = ["lol"] * 9
    for _ in range(9):
        nested = [nested] * 9  # 9^10 values, shared
    for value in (nested, "x" * 10**6, {i: i for i in range(10**5)}, b"\x00" * 10**6):
        assert len(shown(value)) <= SHOWN_LENGTH
    assert shown("label-noise") == "'label-noise'" and shown(3) == "3"
    assert "\n" not in shown("a\nb")


def test_an_integer_too_long_for_python_is_a_yaml_error(tmp_path):
    path = tmp_path / "long-int.yaml"
    path.write_text("epochs: " + "9" * 5000 + "\n")
    with pytest.raises(RethinkgenError, match="long-int.yaml is not valid YAML/JSON: Exceeds the limit"):
        RunConfig.from_file(path)


# ------------------------------------------------------------------------------- contradictions, duplicates
def test_duplicate_yaml_keys_are_refused_with_their_lines(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text("epochs: 2\nlr: 0.1\nepochs: 3\n")
    assert_refused(capsys, "run", "--config", path, "--runs", tmp_path / "runs",
                   fragments=[str(path), "line 3", "key 'epochs' is given twice (first on line 1)"])
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {epochs: 1}\naxes: {lr: [0.1]}\nbase: {epochs: 2}\n")
    with pytest.raises(RethinkgenError, match="spec.yaml, line 3: key 'base' is given twice"):
        load_spec(spec)


def test_both_spellings_of_one_setting_are_refused(tmp_path, capsys):
    path = tmp_path / "both.yaml"
    path.write_text("label-noise: 0.5\nlabel_noise: 0.2\n")
    assert_refused(capsys, "run", "--config", path, "--runs", tmp_path / "runs",
                   fragments=[str(path), "'label_noise' is given twice (as 'label-noise' and 'label_noise')"])
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {label-noise: 0.5, label_noise: 0.2}\n")
    with pytest.raises(RethinkgenError, match="'base': 'label_noise' is given twice"):
        load_spec(spec)
    assert RunConfig.from_file(_written(tmp_path / "one.yaml", "label-noise: 0.5\n")).label_noise == 0.5


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("bad, message", [
    ({"axes": {"label_noise": [0.0]}, "zip": {"label_noise": [0.5]}}, "'label_noise' is both an axis and a zip axis"),
    ({"axes": {"seed": [1, 2]}}, "seed cannot be an axis"),
    ({"base": {"augment": ["crop", "crop"]}}, "augmentation 'crop' is given twice"),
    ({"preset": ["figure1a"]}, "unknown preset ['figure1a']"),
    ({"name": "../outside"}, "sweep name '../outside' is not allowed: use at most 120 letters"),
    ({"name": "a/b"}, "sweep name 'a/b' is not allowed: use at most 120 letters"),
    ({"name": "$\\bogus$"}, "sweep name '$\\\\bogus$' is not allowed: use at most 120 letters"),
    ({"axes": {"lr": [0.001 * (i + 1) for i in range(101)], "label_noise": [i / 100 for i in range(100)]}},
     "the sweep expands to 10,100 runs; the limit is 10,000"),
])
def test_contradictory_or_unusable_specs_are_refused(bad, message):
    with pytest.raises(RethinkgenError) as info:
        expand({"base": {"epochs": 1}, **bad})
    assert message in str(info.value)


@pytest.mark.parametrize("flag", [["--scale", "paper"], ["--dataset", ""], ["--seeds", "1"], ["--models", "mlp-3x512"]])
def test_preset_flags_beside_a_spec_are_refused(tmp_path, capsys, flag):
    spec = _written(tmp_path / "spec.yaml", "base: {epochs: 1}\n")
    assert_refused(capsys, "sweep", spec, *flag, "--dry-run", fragments=["apply to presets; put them in the spec file"])


def test_measures_refuses_no_compute_with_recompute(tmp_path, capsys):
    assert main(["measures", "--runs", str(tmp_path), "--no-compute", "--recompute"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rethinkgen: error: ") and err.count("\n") == 1
    assert "--recompute: not allowed with argument --no-compute" in err


# ------------------------------------------------------------------------------------ user model factories
@pytest.fixture
def user_models(tmp_path, monkeypatch):
    (tmp_path / "factories_under_test.py").write_text(textwrap.dedent("""
        import math
        from torch import nn

        def boom(input_shape, num_classes):
            raise ValueError("factory exploded")

        def tiny(input_shape, num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

        class BadForward(nn.Module):
            def forward(self, x):
                raise KeyError("no such layer")

        def bad_forward(input_shape, num_classes):
            return BadForward()

        def not_a_module(input_shape, num_classes):
            return 42
    """))
    (tmp_path / "raises_on_import.py").write_text("raise ZeroDivisionError('at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "factories_under_test"
    for name in ("factories_under_test", "raises_on_import"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("factory, fragment", [
    ("factories_under_test:boom", "its factory raised ValueError: factory exploded"),
    ("factories_under_test:bad_forward", "its forward pass on input shape (1, 8, 8) raised KeyError"),
    ("factories_under_test:not_a_module", "its factory returned int, not a torch.nn.Module"),
    ("raises_on_import:build", "importing raises_on_import raised ZeroDivisionError: at import"),
])
def test_a_failing_user_model_is_one_error_and_no_run_folder(tmp_path, capsys, user_models, factory, fragment):
    assert_refused(capsys, "run", "--model", factory, *TINY, "--runs", tmp_path / "runs", fragments=[fragment])
    assert run_folders(tmp_path / "runs") == []
    with pytest.raises(models.ModelFactoryError):
        models.create_model(factory, (1, 8, 8), 10)


def test_a_failing_factory_fails_its_runs_and_the_sweep_goes_on(tmp_path, capsys, user_models):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: factories\nbase: {dataset: digits, subset: 100, test_subset: 50, epochs: 1, measures: none}\n"
                    "axes: {model: [mlp-1x512, 'factories_under_test:boom', 'factories_under_test:tiny']}\n")
    code, out, err = run_cli(capsys, "sweep", spec, "--runs", tmp_path / "runs", "--quiet")
    assert code == 1 and "Traceback" not in err
    assert "3 run(s) trained: 2 complete, 0 diverged, 1 failed" in out
    assert "failed: model=factories_under_test:boom" in out and "factory exploded" in out
    summaries = {json.loads(p.read_text())["status"]: json.loads(p.read_text())
                 for p in (tmp_path / "runs").glob("*/summary.json")}
    assert set(summaries) == {"complete", "failed"}
    assert "its factory raised ValueError: factory exploded" in summaries["failed"]["message"]
    # the failure is recorded as any failed run is: skipped next time, retried when asked
    sweep = load_spec(spec)
    assert [status for _, status in run_sweep(sweep, tmp_path / "runs", progress=False).skipped] == \
        ["complete", "failed", "complete"]
    retried = run_sweep(sweep, tmp_path / "runs", progress=False, retry_failed=True)
    assert [(run.config.model, status) for run, status, _ in retried.ran] == [("factories_under_test:boom", "failed")]


def test_a_dry_run_imports_no_user_model(tmp_path, capsys, user_models):
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {epochs: 1}\naxes: {model: [mlp-1x512, 'factories_under_test:boom']}\n")
    code, out, _ = run_cli(capsys, "sweep", spec, "--dry-run", "--runs", tmp_path / "runs")
    assert code == 0 and "factories_under_test" not in sys.modules
    line = next(line for line in out.splitlines() if "factories_under_test:boom" in line)
    assert "cost unknown" in line and "1 run(s) of a model without a measured speed" in out


# ------------------------------------------------------------------------------------------- CLI values
@pytest.mark.parametrize("device", ["cuda:abc", "tpu", "", "cuda:", "cpu:0"])
def test_malformed_devices_are_refused(tmp_path, capsys, device):
    assert_refused(capsys, "run", "--device", device, *TINY, "--runs", tmp_path / "runs",
                   fragments=[f"unknown device '{device}'", "allowed: auto, cpu, cuda, cuda:N"])
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_measures_on_a_missing_gpu_is_one_error_before_any_run(tmp_path, capsys):
    assert run_cli(capsys, "run", *TINY, "--runs", tmp_path)[0] == 0
    summary = next(tmp_path.glob("*/summary.json"))
    before = summary.read_text()
    assert_refused(capsys, "measures", "--runs", tmp_path, "--device", "cuda", "--quiet",
                   fragments=["device 'cuda' requested but no CUDA GPU is available"])
    assert summary.read_text() == before


def test_pad_is_bounded_by_the_image_size(tmp_path, capsys):
    assert_refused(capsys, "run", "--augment", "crop", "--pad", "100000", *TINY, "--runs", tmp_path / "runs",
                   fragments=["pad 100000 must be in 0..8 for 8x8 images"])
    assert run_folders(tmp_path / "runs") == []


@pytest.mark.parametrize("argv, fragment", [
    (["--input-shape", "3,100000,100000"], "holds 30,000,000,000 values per image; the limit is 50,331,648"),
    (["--input-shape", "0,0,0"], "input shape (0, 0, 0) must be three positive sizes"),
    (["--input-shape", "3,28"], "must be three positive sizes"),
    (["--input-shape", "x"], "input shape 'x' must be C,H,W"),
    (["--num-classes", "0"], "num_classes 0 must be in 2..1,000,000"),
    (["--num-classes", "10000000"], "num_classes 10000000 must be in 2..1,000,000"),
])
def test_models_refuses_absurd_shapes_and_class_counts(capsys, argv, fragment):
    assert_refused(capsys, "list", "models", *argv, fragments=[fragment])


def test_models_counts_large_inputs_without_allocating_them(capsys):
    code, out, _ = run_cli(capsys, "list", "models", "--input-shape", "3,1024,1024", "--num-classes", "1000")
    assert code == 0 and f"{3 * 1024 * 1024 * 512 + 512 + 512 * 1000 + 1000:,}" in out  # mlp-1x512: 1.6 billion


@pytest.mark.parametrize("name", ["a/b", "../x", "$\\bogus$", ".hidden"])
def test_model_names_that_are_not_module_references_are_refused(tmp_path, capsys, name):
    assert_refused(capsys, "run", "--model", f"{name}:build", *TINY, "--runs", tmp_path / "runs",
                   fragments=["unknown model", "package.module:factory"])


def test_dollar_signs_in_report_texts_are_text_not_mathtext(tmp_path, capsys):
    spec = tmp_path / "math.yaml"
    spec.write_text("name: math\npreset: figure1a\nbase: {dataset: digits, subset: 60, test_subset: 30, epochs: 1, "
                    "measures: none}\naxes: {data_dir: ['$\\bogus$', '$x^$']}\n")
    assert run_cli(capsys, "sweep", spec, "--runs", tmp_path / "runs", "--quiet")[0] == 0
    code, _, err = run_cli(capsys, "report", "--runs", tmp_path / "runs")
    assert code == 0, err
    assert (tmp_path / "runs" / "report" / "math-figure1a.png").stat().st_size > 0
    assert "data_dir=$\\bogus$" in (tmp_path / "runs" / "report" / "report.md").read_text()


@pytest.mark.parametrize("argv, fragment", [
    (["theory", "memorize", "--subset", "0"], "train subset size 0 must be an integer in 1..1347"),
    (["theory", "memorize", "--subset", "-5"], "train subset size -5"),
    (["demo", "--subset", "0"], "subset 0 must be an integer >= 1"),
    (["demo", "--test-subset", "0"], "test_subset 0 must be an integer >= 1"),
    (["demo", "--epochs", "0"], "epochs 0 must be an integer >= 1"),
    (["run", "--subset", "0"], "subset 0 must be an integer >= 1"),
    (["run", "--test-subset", "0"], "test_subset 0 must be an integer >= 1"),
    (["theory", "rademacher", "--subset", "0"], "n 0 must be an integer in 1..1347"),
    (["theory", "rademacher", "--draws", "0"], "draws 0 must be an integer >= 1"),
    (["theory", "stability", "--subset", "0"], "n 0 must be an integer"),
    (["sweep", "--preset", "figure1a", "--epochs", "0", "--dry-run"], "epochs 0 must be an integer >= 1"),
    (["sweep", "--preset", "figure1a", "--workers", "0"], "workers 0 must be an integer >= 1"),
    (["demo", "--dataset", ""], "unknown dataset ''"),
    (["sweep", "--preset", "figure1a", "--dataset", "", "--dry-run"], "unknown dataset ''"),
])
def test_zero_and_negative_sizes_are_refused_never_taken_for_all(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert_refused(capsys, *argv, fragments=[fragment])
    assert run_folders(tmp_path / "runs") == []


def test_seeds_beyond_what_torch_takes_are_refused(tmp_path, capsys):
    assert_refused(capsys, "run", "--seed", str(10**23), *TINY, "--runs", tmp_path / "runs",
                   fragments=["seed 100000000000000000000000 must be an integer in 0..9223372036854775807"])


# ------------------------------------------------------------------------------------------- data folders
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"])
def test_a_data_dir_that_is_a_file_is_said_to_be_a_file(tmp_path, capsys, dataset):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_refused(capsys, "run", "--dataset", dataset, "--data-dir", blocker, "--runs", tmp_path / "runs", "--quiet",
                   fragments=[f"{dataset}: data directory {blocker} is a file, not a folder"])
    assert_refused(capsys, "list", "datasets", "--data-dir", blocker, fragments=["is a file, not a folder"])


# ------------------------------------------------------------------------------ nothing written on refusal
@pytest.mark.parametrize("argv, fragment", [
    (["--crop", "0"], "crop '0' must be auto, none, or a positive integer size"),
    (["--crop", "100"], "crop size '100' must be in 1..8 for 8x8 images"),
    (["--model", "fixed_input:build"], "cannot take input shape (1, 8, 8)"),
    (["--dataset", "synthetic", "--model", "fixed_input:classes3"], "gives output shape (3,)"),
])
def test_settings_refused_after_the_data_loads_leave_no_run_folder(tmp_path, capsys, monkeypatch, argv, fragment):
    (tmp_path / "fixed_input.py").write_text(
        "from torch import nn\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n"
        "def classes3(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(3))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    runs = tmp_path / "runs"
    assert run_cli(capsys, "run", *TINY, "--runs", runs)[0] == 0  # a run already there is kept as it is
    kept = {p.name: sorted(f.name for f in p.iterdir()) for p in run_folders(runs)}
    assert_refused(capsys, "run", *argv, *TINY, "--runs", runs, fragments=[fragment])
    assert {p.name: sorted(f.name for f in p.iterdir()) for p in run_folders(runs)} == kept
    sys.modules.pop("fixed_input", None)


def test_a_refused_sweep_creates_no_runs_folder(tmp_path):
    sweep = expand({"base": {"epochs": 1, "augment": ["crop"], "pad": 99}})
    with pytest.raises(RethinkgenError, match="run 'base': pad 99 must be in 0..8"):
        run_sweep(sweep, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_sweep_on_a_missing_gpu_is_one_error_before_anything(tmp_path, capsys):
    spec = _written(tmp_path / "gpu.yaml", "base: {device: cuda, epochs: 1}\naxes: {label_noise: [0.1, 0.2]}\n")
    assert_refused(capsys, "sweep", spec, "--runs", tmp_path / "runs",
                   fragments=["device 'cuda' requested but no CUDA GPU is available"])
    assert not (tmp_path / "runs").exists()


def test_a_measures_module_that_raises_on_import_is_one_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "measures_that_raise.py").write_text("raise ZeroDivisionError('at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert_refused(capsys, "measures", "--runs", tmp_path, "--import", "measures_that_raise",
                   fragments=["importing 'measures_that_raise' raised ZeroDivisionError: at import"])
    sys.modules.pop("measures_that_raise", None)
