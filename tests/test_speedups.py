"""The GPU switches: how auto resolves, what enters the run id, and that each switch runs on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.engine import speedups
from rethinkgen.engine.speedups import Speedups
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.models import create_model

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"train_seconds", "wall_seconds", "images_per_second"}
CPU = torch.device("cpu")


def tiny(**changes) -> RunConfig:
    values = dict(dataset="digits", subset=120, test_subset=60, model="mlp-1x512", epochs=3, log_every=1,
                  label_noise=0.5, device="cpu")
    return RunConfig(**{**values, **changes})


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def losses(result):
    return [row[k] for row in result.metrics for k in ("train_loss", "test_loss")]


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine that reports a bf16-capable CUDA GPU (only the resolution logic is exercised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


def test_auto_is_off_on_the_cpu():
    assert RunConfig(device="cpu").resolved().amp == "off"
    conv = create_model("alexnet-small", (3, 28, 28), 10)
    assert Speedups.resolve("off", "auto", "auto", CPU, conv) == Speedups()


def test_auto_on_cuda_is_bf16_and_channels_last_for_conv_models_and_no_compile(fake_cuda):
    assert RunConfig().resolved().amp == "bf16"
    assert RunConfig(device="cpu").resolved().amp == "off"  # an explicit CPU stays off on a GPU machine
    cuda = torch.device("cuda")
    conv, mlp = create_model("alexnet-small", (3, 28, 28), 10), create_model("mlp-1x512", (3, 28, 28), 10)
    assert Speedups.resolve("bf16", "auto", "auto", cuda, conv) == Speedups(amp=True, channels_last=True)
    assert Speedups.resolve("bf16", "auto", "auto", cuda, mlp) == Speedups(amp=True)
    assert Speedups.resolve("off", "on", "on", CPU, mlp) == Speedups(channels_last=True, compile=True)


def test_older_gpus_without_bf16_resolve_to_off(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert speedups.resolve_amp("auto", "cuda:1") == "off"


def test_bf16_enters_the_run_id_and_the_other_switches_do_not(fake_cuda):
    stored = "bb9fc11b3ad7"  # RunConfig().run_id() before the switches existed (tests/test_cli.py pins it)
    assert RunConfig(device="cpu").run_id() == RunConfig(amp="off").run_id() == stored
    assert RunConfig(amp="off", channels_last="on", compile="on").run_id() == stored
    bf16 = RunConfig(amp="bf16").run_id()
    assert bf16 != stored
    assert RunConfig().run_id() == bf16  # auto on this (fake) GPU machine is bf16: the same run
    assert RunConfig(amp="bf16", device="cpu").run_id() == bf16  # bf16 is bf16 on any device


def test_bad_values_are_named_and_yaml_on_off_is_read_as_words(tmp_path, capsys):
    with pytest.raises(RethinkgenError, match=r"unknown amp 'fp16'; allowed: off, bf16, auto"):
        RunConfig(amp="fp16").validated()
    with pytest.raises(RethinkgenError, match=r"unknown compile 'yes'; allowed: off, on, auto"):
        RunConfig(compile="yes").validated()
    path = tmp_path / "run.yaml"
    path.write_text("channels_last: on\namp: off\ncompile: off\n")  # YAML 1.1 reads these as booleans
    config = RunConfig.from_file(path)
    assert (config.channels_last, config.amp, config.compile) == ("on", "off", "off")
    assert main(["run", "--amp", "fp16"]) == 2
    assert "argument --amp: unknown value 'fp16'; allowed: off, bf16, auto" in capsys.readouterr().err


def test_auto_leaves_cpu_results_identical_to_every_switch_off(tmp_path):
    auto = train(tiny(amp="auto", channels_last="auto", compile="auto", augment=("crop", "flip")), tmp_path / "a",
                 progress=False)
    off = train(tiny(amp="off", channels_last="off", compile="off", augment=("crop", "flip")), tmp_path / "b",
                progress=False)
    assert auto.run_id == off.run_id
    assert without_timing(auto.metrics) == without_timing(off.metrics) and auto.steps == off.steps
    assert (auto.summary["precision"], auto.summary["memory_format"], auto.summary["compiled"]) == \
        ("fp32", "contiguous", False)
    assert json.loads((auto.run_dir / "config.json").read_text())["amp"] == "off"


def test_bf16_autocast_runs_on_the_cpu_and_changes_the_numbers_a_little(tmp_path):
    fp32 = train(tiny(), tmp_path, progress=False)
    bf16 = train(tiny(amp="bf16"), tmp_path, progress=False)
    assert bf16.run_id != fp32.run_id and bf16.summary["status"] == "complete"
    assert bf16.summary["precision"] == "bf16 autocast"
    assert json.loads((bf16.run_dir / "config.json").read_text())["amp"] == "bf16"
    assert losses(bf16) != losses(fp32)  # autocast took effect ...
    assert losses(bf16) == pytest.approx(losses(fp32), rel=1e-2)  # ... within bf16's precision (~1e-4 seen)


def test_channels_last_runs_on_the_cpu_with_the_same_results_up_to_rounding(tmp_path):
    config = tiny(model="alexnet-small", subset=48, test_subset=24, epochs=2, batch_size=16)
    plain = train(config, tmp_path / "plain", progress=False)
    last = train(config.replace(channels_last="on"), tmp_path / "last", progress=False)
    assert last.run_id == plain.run_id and last.summary["memory_format"] == "channels_last"
    weight = torch.load(last.run_dir / "checkpoint.pt", weights_only=True)["model"]["4.weight"]  # 2nd conv
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert losses(last) == pytest.approx(losses(plain), rel=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RETHINKGEN_TEST_COMPILE") != "1",
                    reason="torch.compile takes about a minute on 2 CPU cores; set RETHINKGEN_TEST_COMPILE=1")
def test_compile_runs_on_the_cpu_with_the_same_results_up_to_rounding(tmp_path):
    config = tiny(subset=128, test_subset=64, batch_size=64, eval_batch_size=64)  # one shape for every batch
    plain = train(config, tmp_path / "plain", progress=False)
    compiled = train(config.replace(compile="on"), tmp_path / "compiled", progress=False)
    assert compiled.summary["compiled"] and compiled.summary["status"] == "complete"
    assert losses(compiled) == pytest.approx(losses(plain), rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_path_matches_the_cpu_path_in_fp32(tmp_path):
    torch.backends.cudnn.allow_tf32 = False
    config = tiny(augment=("crop", "flip"), amp="off", channels_last="off")
    cpu = train(config, tmp_path / "cpu", progress=False)
    gpu = train(config.replace(device="cuda"), tmp_path / "gpu", progress=False)
    assert (cpu.run_dir / "randomization.json").read_text() == (gpu.run_dir / "randomization.json").read_text()
    assert losses(gpu) == pytest.approx(losses(cpu), rel=1e-3)


def test_the_gpu_benchmark_runs_as_a_smoke_test_on_the_cpu():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke"], capture_output=True,
                               text=True, env=env, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    out = completed.stdout
    assert "check passed" in out and "record identical" in out and "device: CPU" in out
    rows = [line for line in out.splitlines() if line.startswith(("| mlp-1x512 |", "| alexnet-small |"))]
    settings = {row.split("|")[2].strip() for row in rows if not row.split("|")[2].strip().isdigit()}
    assert settings == {"fp32", "bf16", "channels_last"}
    ensembles = [row for row in rows if row.split("|")[2].strip().isdigit()]
    assert [row.split("|")[2].strip() for row in ensembles][-2:] == ["1", "2"] and "x |" in ensembles[-1]
    assert json.loads(out.strip().splitlines()[-1]) == {"check_passed": True, "runs": 5}
