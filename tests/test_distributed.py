"""One run trained by two processes under torchrun (gloo on CPU): shards, equality with one process, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.engine import distributed
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.store import load

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"train_seconds", "wall_seconds", "images_per_second"}
# mlp on 200 digits, 4 epochs of 2 steps; label noise so that there is something to fit; no dropout, no
# augmentation (each rank would draw its own dropout masks)
FLAGS = dict(subset=200, test_subset=100, epochs=4, log_every=1, label_noise=0.5, device="cpu")
# float32: DDP sums the two ranks' gradients where one process sums over the whole batch, so the order of
# additions differs. Losses differed by at most 2e-7 (relative) on the development machine.
LOSS_RTOL = 1e-5
ACCURACY_EXAMPLES = 1  # a near-tie could flip one prediction


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One torchrun launch of 2 processes (see distributed_driver.py): a run straight through, and the same
    run interrupted in its third epoch and resumed. Returns the output folder and what rank 0 printed."""
    out = tmp_path_factory.mktemp("torchrun")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in FLAGS.items()] + ["--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "tests" / "distributed_driver.py"), str(out), *flags]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return out, completed.stdout


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return train(RunConfig(**FLAGS), tmp_path_factory.mktemp("single"), progress=False)


def test_two_processes_train_the_run_one_process_trains(launched, single):
    out, stdout = launched
    run_dir = out / "whole" / single.run_id  # the same run id: world size is not part of what a run is
    for name in ("randomization.json", "config.json"):
        assert (run_dir / name).read_text() == (single.run_dir / name).read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["world_size"] == 2 and single.summary["world_size"] == 1
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(single.metrics) == 4
    for two, one in zip(rows, single.metrics):
        assert (two["epoch"], two["step"], two["lr"]) == (one["epoch"], one["step"], one["lr"])
        for key in ("train_loss", "test_loss"):
            assert two[key] == pytest.approx(one[key], rel=LOSS_RTOL)
        for key, n in (("train_accuracy", 200), ("test_accuracy", 100), ("online_accuracy", 200)):
            assert abs(two[key] - one[key]) * n <= ACCURACY_EXAMPLES + 1e-6
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [s["step"] for s in single.steps] == list(range(1, 9))
    assert [s["loss"] for s in steps] == pytest.approx([s["loss"] for s in single.steps], rel=LOSS_RTOL)
    assert stdout.count("[complete]") == 2  # rank 0 reports (the whole run and the resumed one); rank 1 is silent


def test_an_interrupted_distributed_run_resumes_where_it_stopped(launched):
    out, stdout = launched
    for rank in (0, 1):  # both ranks stopped on rank 0's interrupt, then both finished the run
        assert json.loads((out / f"codes-{rank}.json").read_text()) == {"whole": 0, "interrupted": 130, "resumed": 0}
    assert "resuming after epoch 2" in stdout
    run_id = next(p.name for p in (out / "whole").iterdir() if p.is_dir())
    whole, resumed = out / "whole" / run_id, out / "resumed" / run_id
    read = lambda path: [json.loads(line) for line in path.read_text().splitlines()]  # noqa: E731
    assert without_timing(read(resumed / "metrics.jsonl")) == without_timing(read(whole / "metrics.jsonl"))
    assert read(resumed / "steps.jsonl") == read(whole / "steps.jsonl")
    frame = load(out / "resumed")
    assert list(frame["status"]) == ["complete"] and not (resumed / "lock").read_text()


def test_each_rank_takes_a_contiguous_shard_of_every_global_batch():
    for n, world in ((128, 2), (10, 3), (2, 4), (72, 2)):
        parts = [distributed.Context(rank, world).part(n) for rank in range(world)]
        covered = [i for part in parts for i in range(n)[part]]
        assert covered == list(range(n))
        sizes = [part.stop - part.start for part in parts]
        assert max(sizes) - min(sizes) <= 1
    assert distributed.SINGLE.part(7) == slice(0, 7)


def test_one_process_is_the_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.from_environment()
    assert ctx is distributed.SINGLE and not ctx.active and ctx.is_main
    x = torch.arange(3.0)
    assert ctx.all_sum(x) is x and ctx.all_mean(x) is x and ctx.stream("dropout") == "dropout"
    assert ctx.on_main(lambda: 5) == 5


def test_the_torchrun_environment_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = distributed.from_environment()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (3, 4, 1, False)
    assert ctx.stream("dropout") == "dropout:rank3"
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(RethinkgenError, match="RANK=4 and WORLD_SIZE=4"):
        distributed.from_environment()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(RethinkgenError, match="RANK='x' must be a non-negative integer"):
        distributed.from_environment()


def test_a_failure_on_rank_0_is_rebuilt_on_the_others():
    assert isinstance(distributed._Failure("KeyboardInterrupt", "", False, True).rebuild(), KeyboardInterrupt)
    busy = distributed._Failure("RunBusy", "run x is being trained by another process", True, False).rebuild()
    assert isinstance(busy, RethinkgenError) and "being trained" in str(busy)
    other = distributed._Failure("OSError", "disk full", False, False).rebuild()
    assert "rank 0 failed: OSError: disk full" in str(other)


def test_a_sweep_refuses_to_run_under_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["sweep", "--preset", "figure1a", "--dry-run"]) == 2
    assert "a sweep does not run under torchrun" in capsys.readouterr().err
