"""Sweeps on Ray: a local Ray runtime with 2 CPUs runs a tiny sweep end to end (skipped without Ray).

Install Ray to run these: pip install -e '.[test,ray]' && python -m pytest -q tests/test_ray.py
"""

import json
import logging
import os
import textwrap

import pytest

from helpers import FAILING_MODEL_SOURCE
from rethinkgen.cli import main
from rethinkgen.errors import RethinkgenError
from rethinkgen.experiments.sweep import load_spec, run_sweep
from rethinkgen.store import load

ray = pytest.importorskip("ray")



@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory):
    """A local Ray runtime of 2 CPUs whose workers can import a model that fails while training."""
    models_dir = tmp_path_factory.mktemp("models")
    (models_dir / "ray_flaky_models.py").write_text(FAILING_MODEL_SOURCE)
    path = os.pathsep.join([str(models_dir)] + [os.path.abspath(p) for p in
                                                os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    with pytest.MonkeyPatch.context() as patch:  # the Ray processes inherit this environment
        patch.setenv("PYTHONPATH", path)
        patch.setenv("OMP_NUM_THREADS", "1")
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield models_dir
    ray.shutdown()


def test_a_sweep_runs_on_ray_like_it_runs_locally(tmp_path, ray_runtime, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ray_runtime))
    spec = tmp_path / "ray-sweep.yaml"
    spec.write_text(textwrap.dedent("""
        name: ray-sweep
        base: {dataset: digits, subset: 100, test_subset: 50, epochs: 2, log_every: 1}
        zip:
          model: [ray_flaky_models:build, mlp-1x512, mlp-1x512, mlp-1x512]
          label_noise: [0.0, 0.0, 0.5, 1.0]
    """))
    runs = tmp_path / "runs"
    assert main(["sweep", str(spec), "--executor", "ray", "--runs", str(runs), "--quiet"]) == 1  # one run failed
    out = capsys.readouterr().out
    assert "4 run(s) trained: 3 complete, 0 diverged, 1 failed; 0 skipped" in out
    assert "boom in training" in out

    # the store: every run's folder and one index row each, written by this process from the run folders
    frame = load(runs).set_index("run_id")
    plan = load_spec(spec)
    ids = [run.config.run_id() for run in plan.runs]
    assert sorted(frame.index) == sorted(ids)
    for run_id in ids:
        summary = json.loads((runs / run_id / "summary.json").read_text())
        assert frame.loc[run_id, "status"] == summary["status"]
        assert frame.loc[run_id, "epochs_completed"] == summary["epochs_completed"]
    assert list(frame.loc[ids, "status"]) == ["failed", "complete", "complete", "complete"]
    assert json.loads((runs / "sweeps" / "ray-sweep.json").read_text())["runs"][0]["run_id"] == ids[0]

    # a second invocation trains nothing; --retry-failed trains the failed run again, and only it
    assert main(["sweep", str(spec), "--executor", "ray", "--runs", str(runs), "--quiet"]) == 0
    assert "0 run(s) trained" in capsys.readouterr().out
    retried = run_sweep(plan, runs, executor="ray", retry_failed=True, progress=False)
    assert [(run.config.run_id(), status) for run, status, _ in retried.ran] == [(ids[0], "failed")]

    # the local executor gives the same numbers for the same runs (both train with one thread)
    local = run_sweep(plan, tmp_path / "local", progress=False)
    assert [status for _, status, _ in local.ran] == ["failed", "complete", "complete", "complete"]
    local_frame = load(tmp_path / "local").set_index("run_id")
    for run_id in ids[1:]:
        assert local_frame.loc[run_id, "train_accuracy"] == pytest.approx(frame.loc[run_id, "train_accuracy"], abs=1e-6)
        assert local_frame.loc[run_id, "test_accuracy"] == pytest.approx(frame.loc[run_id, "test_accuracy"], abs=1e-6)


def test_runs_per_gpu_on_a_cluster_without_gpus_is_refused(tmp_path, ray_runtime):
    plan = load_spec_from(tmp_path, "base: {dataset: digits, subset: 100, test_subset: 50, epochs: 1}\n")
    with pytest.raises(RethinkgenError, match="--runs-per-gpu 2 needs a GPU, and the Ray cluster has none"):
        run_sweep(plan, tmp_path / "runs", executor="ray", runs_per_gpu=2, progress=False)
    plan = load_spec_from(tmp_path, "base: {dataset: digits, subset: 100, test_subset: 50, epochs: 1, device: cuda}\n")
    with pytest.raises(RethinkgenError, match="asks for device 'cuda', and the Ray cluster has no GPU"):
        run_sweep(plan, tmp_path / "runs", executor="ray", progress=False)
    assert not list((tmp_path / "runs").glob("*/summary.json"))


def load_spec_from(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return load_spec(path)


def test_an_ensemble_is_one_ray_task_writing_its_runs(tmp_path, ray_runtime):
    plan = load_spec_from(tmp_path, "base: {dataset: digits, subset: 100, test_subset: 50, epochs: 2}\n"
                                    "axes: {label_noise: [0.0, 0.5, 1.0]}\n")
    outcome = run_sweep(plan, tmp_path / "runs", executor="ray", ensemble=3, progress=False)
    assert [status for _, status, _ in outcome.ran] == ["complete"] * 3
    frame = load(tmp_path / "runs")
    assert sorted(frame["label_noise"]) == [0.0, 0.5, 1.0] and set(frame["status"]) == {"complete"}
