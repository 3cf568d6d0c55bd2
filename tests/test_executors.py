"""Executors without Ray and without a GPU: option checks, the missing-Ray error, GPU sharing with a faked
GPU count, and the pieces the Ray executor relies on (runs written without the index, then registered)."""

import sys
import textwrap

import pytest

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.experiments import executors
from rethinkgen.experiments.sweep import expand, run_sweep
from rethinkgen.store import RunStore, load

TINY_BASE = {"dataset": "digits", "subset": 100, "test_subset": 50, "epochs": 1}


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent("""
        name: small
        base: {dataset: digits, subset: 100, test_subset: 50, epochs: 1}
        axes: {label_noise: [0.0, 1.0]}
    """))
    return str(path)


def test_without_ray_installed_one_line_says_how_to_install_it(spec_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were not installed
    assert main(["sweep", spec_file, "--executor", "ray", "--runs", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("rethinkgen: error: --executor ray needs Ray, which is not installed; "
                           "install it with: pip install 'rethinkgen[ray]'")
    assert not list((tmp_path / "runs").glob("*/summary.json"))


def test_a_ray_cluster_that_cannot_be_reached_is_one_line(spec_file, tmp_path, capsys, monkeypatch):
    class Unreachable:  # stands for Ray, which need not be installed here
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(address, **options):
            raise ConnectionError(f"Failed to connect to Ray cluster at {address}\nmore detail")

    monkeypatch.setitem(sys.modules, "ray", Unreachable)
    argv = ["sweep", spec_file, "--executor", "ray", "--address", "10.0.0.1:6379", "--runs", str(tmp_path), "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err == ("rethinkgen: error: cannot reach the Ray cluster at 10.0.0.1:6379: "
                                       "ConnectionError: Failed to connect to Ray cluster at 10.0.0.1:6379\n")


@pytest.mark.parametrize("argv, message", [
    (["--executor", "dask"], "argument --executor: unknown value 'dask'; allowed: local, ray"),
    (["--executor", "ray", "--workers", "2"], "--workers is for the local executor"),
    (["--address", "auto"], "--address auto needs --executor ray"),
    (["--workers", "2", "--runs-per-gpu", "2"], "give --workers N for runs on the CPU or --runs-per-gpu K"),
    (["--runs-per-gpu", "0"], "runs_per_gpu 0 must be an integer >= 1"),
    (["--cpus-per-run", "0", "--dry-run"], "cpus_per_run 0 must be an integer >= 1"),
])
def test_bad_executor_options_are_refused_before_anything_starts(spec_file, tmp_path, capsys, argv, message):
    assert main(["sweep", spec_file, "--runs", str(tmp_path / "runs"), "--quiet"] + argv) == 2
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob("*/summary.json"))


def test_runs_per_gpu_without_a_gpu_is_an_error(spec_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(executors, "gpu_count", lambda: 0)
    assert main(["sweep", spec_file, "--runs-per-gpu", "2", "--runs", str(tmp_path / "runs"), "--quiet"]) == 2
    assert ("--runs-per-gpu 2 needs a GPU, and none is visible here; for runs on the CPU use --workers N"
            in capsys.readouterr().err)
    assert not list((tmp_path / "runs").glob("*/summary.json"))


def test_local_plan_puts_k_workers_on_each_gpu_in_turn():
    assert executors.local_plan(None, 2, None, gpus=2)[:2] == (4, ["cuda:0", "cuda:1", "cuda:0", "cuda:1"])
    assert executors.local_plan(None, 3, 4, gpus=1) == (3, ["cuda:0"] * 3, 4)
    assert executors.local_plan(None, 1, None, gpus=1) == (1, ["cuda:0"], None)
    assert executors.local_plan(3, None, None, gpus=8) == (3, None, executors.local_plan(3, None, None, 0)[2])
    assert executors.local_plan(None, None, None, gpus=0) == (1, None, None)


def test_the_executor_picks_the_gpu_except_for_runs_on_the_cpu(monkeypatch):
    given = []
    monkeypatch.setattr(executors, "train", lambda config, *args, **kwargs: given.append(config.device) or
                        type("R", (), {"summary": {"status": "complete"}})())
    for device in ("auto", "cuda", "cuda:0", "cpu"):
        config = RunConfig(**TINY_BASE, device=device).to_dict()
        assert executors.train_group([config], "unused", None, device="cuda:1") == [("complete", "")]
    executors.train_group([RunConfig(**TINY_BASE).to_dict()], "unused", None)
    assert given == ["cuda:1", "cuda:1", "cuda:1", "cpu", "auto"]


def test_gpu_workers_each_hold_one_gpu_end_to_end_with_a_faked_gpu_count(tmp_path, monkeypatch):
    """Two faked GPUs, one run each: the sweep starts a worker per GPU and sends each run to one. This
    machine has no GPU, so the runs given a GPU fail, naming the GPU they were given; the CPU run trains."""
    monkeypatch.setattr(executors, "gpu_count", lambda: 2)
    sweep = expand({"name": "gpus", "base": TINY_BASE,
                    "zip": {"device": ["auto", "cuda", "cpu"], "label_noise": [0.0, 0.5, 1.0]}})
    outcome = run_sweep(sweep, tmp_path, runs_per_gpu=1, progress=False)
    statuses = [(run.config.device, status) for run, status, _ in outcome.ran]
    assert statuses == [("auto", "failed"), ("cuda", "failed"), ("cpu", "complete")]
    for _, _, message in outcome.ran[:2]:
        assert "requested but no CUDA GPU is available" in message
        assert "device 'cuda:0'" in message or "device 'cuda:1'" in message


def test_a_ray_task_refuses_a_runs_folder_its_node_cannot_see(tmp_path):
    config = RunConfig(**TINY_BASE).to_dict()
    [(status, message)] = executors._ray_task([config], str(tmp_path / "not-shared"), 1, None)
    assert status == "failed" and "is not visible on node" in message and "shared folder" in message
    assert not (tmp_path / "not-shared").exists()


def test_runs_trained_without_the_index_are_registered_from_their_folders(tmp_path):
    config = RunConfig(**TINY_BASE)
    assert executors.train_group([config.to_dict()], str(tmp_path), 1, index=False) == [("complete", "")]
    assert (tmp_path / config.run_id() / "summary.json").exists() and not (tmp_path / "index.sqlite").exists()
    executors._register_from_files(RunStore(tmp_path), config.run_id())
    frame = load(tmp_path)
    assert list(frame["run_id"]) == [config.run_id()] and list(frame["status"]) == ["complete"]


class FakeRay:
    """Stands for Ray on a cluster with two GPUs: records each task's resource request and runs the task
    here when its result is asked for."""

    class exceptions:
        class RayError(Exception):
            pass

    def __init__(self):
        self.requests, self.shut_down = [], False

    def is_initialized(self):
        return False

    def init(self, address=None, **options):
        pass

    def shutdown(self):
        self.shut_down = True

    def cluster_resources(self):
        return {"CPU": 16.0, "GPU": 2.0}

    def remote(self, **task_options):
        fake = self

        class Task:
            def __init__(self, function, options=None):
                self.function, self.options_ = function, options or {}

            def options(self, **options):
                return Task(self.function, options)

            def remote(self, *args):
                fake.requests.append((self.options_, args[0][0]["device"], args[3]))
                return lambda: self.function(*args)

        return lambda function: Task(function)

    def wait(self, pending, num_returns):
        return pending[:num_returns], pending[num_returns:]

    def get(self, ref):
        return ref()

    def cancel(self, ref):
        pass


def test_ray_tasks_ask_for_a_gpu_fraction_and_cpus_with_a_faked_cluster(tmp_path, monkeypatch):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    sweep = expand({"name": "fractions", "base": TINY_BASE,
                    "zip": {"device": ["auto", "cuda:1", "cpu"], "label_noise": [0.0, 0.5, 1.0]}})
    outcome = run_sweep(sweep, tmp_path, executor="ray", runs_per_gpu=4, cpus_per_run=2, progress=False)
    assert fake.requests == [({"num_cpus": 2, "num_gpus": 0.25}, "auto", "cuda"),
                             ({"num_cpus": 2, "num_gpus": 0.25}, "cuda:1", "cuda"),
                             ({"num_cpus": 2, "num_gpus": 0}, "cpu", None)]
    # no GPU here: the runs sent to one fail on it, naming it; the CPU run trains and reaches the index
    assert [status for _, status, _ in outcome.ran] == ["failed", "failed", "complete"]
    assert "device 'cuda' requested but no CUDA GPU is available" in outcome.ran[0][2]
    assert list(load(tmp_path)["status"]) == ["complete"] and fake.shut_down
