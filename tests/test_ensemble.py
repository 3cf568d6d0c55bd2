"""Ensembles: K runs trained as one batched model write exactly the runs trained one by one."""

import json

import pytest
import torch

from helpers import interrupt_after
from rethinkgen.config import RunConfig
from rethinkgen.engine.ensemble import group_configs, group_key, train_ensemble
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.store import load

TIMING = {"train_seconds", "wall_seconds", "images_per_second"}


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tiny(**changes) -> RunConfig:
    values = dict(dataset="digits", subset=120, test_subset=60, model="mlp-1x512", epochs=3, log_every=2,
                  batch_size=32)
    return RunConfig(**{**values, **changes})


def assert_same_run(solo, batched, tolerance=1e-9):
    assert solo.run_id == batched.run_id
    for name in ("randomization.json", "config.json"):
        assert (solo.run_dir / name).read_text() == (batched.run_dir / name).read_text()
    assert set(solo.summary) == set(batched.summary)
    for key in solo.summary:
        if key.startswith("measure_") and isinstance(solo.summary[key], float):
            assert solo.summary[key] == pytest.approx(batched.summary[key], rel=1e3 * tolerance), key
    assert solo.summary["status"] == batched.summary["status"]
    assert len(solo.metrics) == len(batched.metrics) > 0
    for a, b in zip(solo.metrics, batched.metrics):
        assert set(a) == set(b)
        for key in set(a) - TIMING:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], abs=tolerance, rel=tolerance), key
            else:
                assert a[key] == b[key], key
    steps_a = [json.loads(line) for line in (solo.run_dir / "steps.jsonl").read_text().splitlines()]
    steps_b = [json.loads(line) for line in (batched.run_dir / "steps.jsonl").read_text().splitlines()]
    assert [row["step"] for row in steps_a] == [row["step"] for row in steps_b]
    assert [row["loss"] for row in steps_a] == pytest.approx([row["loss"] for row in steps_b], rel=tolerance)
    state_a = torch.load(solo.run_dir / "checkpoint.pt", weights_only=True)
    state_b = torch.load(batched.run_dir / "checkpoint.pt", weights_only=True)
    assert state_a["model"].keys() == state_b["model"].keys()
    for name in state_a["model"]:
        torch.testing.assert_close(state_a["model"][name], state_b["model"][name], rtol=tolerance, atol=tolerance)
        assert state_b["model"][name].is_contiguous(), name  # saved in the usual layout, whatever the stack's
    for momentum in state_b["optimizer"]["state"].values():
        assert momentum["momentum_buffer"].is_contiguous()
    assert state_a["optimizer"]["param_groups"] == state_b["optimizer"]["param_groups"]


def compare(tmp_path, configs, tolerance=1e-9):
    solo = [train(config, tmp_path / "solo", progress=False) for config in configs]
    batched = train_ensemble(configs, tmp_path / "ensemble", progress=False)
    for a, b in zip(solo, batched):
        assert_same_run(a, b, tolerance)
    return solo, batched


def test_each_copy_equals_its_run_trained_alone_in_float64(tmp_path, float64):
    configs = [tiny(), tiny(label_noise=0.5), tiny(label_noise=1.0, seed=3), tiny(inputs="shuffled-pixels"),
               tiny(inputs="gaussian", randomization_seed=7), tiny(init_seed=5, order_seed=9)]
    solo, batched = compare(tmp_path, configs)
    # the copies really differ from each other
    assert len({round(run.summary["train_loss"], 6) for run in batched}) == len(configs)
    rows = load(tmp_path / "ensemble")
    assert sorted(rows["run_id"]) == sorted(run.run_id for run in solo)


def test_batchnorm_model_with_augmentation_matches_runs_trained_alone(tmp_path, float64):
    configs = [tiny(model="inception-small", subset=48, test_subset=24, epochs=2, batch_size=16, augment=["crop", "flip"],
                    label_noise=p, seed=s) for p, s in ((0.0, 0), (1.0, 1))]
    compare(tmp_path, configs, tolerance=1e-7)


def test_alexnet_with_its_own_lrn_and_max_pool_matches_runs_trained_alone(tmp_path, float64):
    # alone, its max-pool takes a channels_last detour on the CPU; under vmap it is PyTorch's own
    configs = [tiny(model="alexnet-small", subset=48, test_subset=24, epochs=2, batch_size=16, augment=["crop", "flip"],
                    label_noise=p, seed=s) for p, s in ((0.0, 0), (1.0, 1))]
    compare(tmp_path, configs, tolerance=1e-7)


def test_float32_ensemble_stays_close_to_runs_trained_alone(tmp_path):
    configs = [tiny(), tiny(label_noise=1.0)]
    solo = [train(config, tmp_path / "solo", progress=False) for config in configs]
    batched = train_ensemble(configs, tmp_path / "ensemble", progress=False)
    for a, b in zip(solo, batched):
        assert a.summary["train_accuracy"] == pytest.approx(b.summary["train_accuracy"], abs=0.02)
        assert a.summary["train_loss"] == pytest.approx(b.summary["train_loss"], rel=1e-3)


def test_bf16_autocast_applies_to_the_ensemble_as_to_runs_trained_alone(tmp_path):
    configs = [tiny(amp="bf16"), tiny(amp="bf16", label_noise=1.0)]
    solo = [train(config, tmp_path / "solo", progress=False) for config in configs]
    batched = train_ensemble(configs, tmp_path / "ensemble", progress=False)
    fp32 = train_ensemble([tiny(), tiny(label_noise=1.0)], tmp_path / "fp32", progress=False)
    for a, b, c in zip(solo, batched, fp32):
        assert a.run_id == b.run_id != c.run_id
        assert a.summary["precision"] == b.summary["precision"] == "bf16 autocast" != c.summary["precision"]
        assert a.summary["train_loss"] == pytest.approx(b.summary["train_loss"], rel=2e-2)
        assert b.summary["train_loss"] != c.summary["train_loss"]


def test_interrupted_ensemble_resumes_to_the_same_runs(tmp_path, float64):
    configs = [tiny(epochs=4), tiny(epochs=4, label_noise=1.0)]
    uninterrupted = train_ensemble(configs, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(configs, tmp_path / "cut", progress=False, on_epoch_end=interrupt_after(2))
    assert json.loads((tmp_path / "cut" / configs[0].run_id() / "summary.json").read_text())["status"] == "interrupted"
    # the first copy resumes alone with the one-by-one trainer, the second as an ensemble of one
    resumed = [train(configs[0], tmp_path / "cut", progress=False),
               train_ensemble(configs[1:], tmp_path / "cut", progress=False)[0]]
    for a, b in zip(uninterrupted, resumed):
        assert_same_run(a, b)


def test_copies_resumed_from_different_epochs_train_in_separate_groups(tmp_path, float64):
    configs = [tiny(epochs=3), tiny(epochs=3, label_noise=0.5)]
    reference = [train(config, tmp_path / "solo", progress=False) for config in configs]
    with pytest.raises(KeyboardInterrupt):  # first run stops after epoch 1
        train_ensemble(configs[:1], tmp_path / "mixed", progress=False, on_epoch_end=interrupt_after(1))
    results = train_ensemble(configs, tmp_path / "mixed", progress=False)  # one at epoch 1, one fresh
    for a, b in zip(reference, results):
        assert_same_run(a, b)


def test_stop_at_fit_and_finished_runs(tmp_path, float64):
    configs = [tiny(epochs=40, lr_decay=1.0, stop_at_fit=True), tiny(epochs=40, lr_decay=1.0, label_noise=1.0)]
    solo, batched = compare(tmp_path, configs)
    assert batched[0].summary["epochs_completed"] < 40 and batched[0].summary["message"].startswith("stopped at fit")
    assert batched[1].summary["epochs_completed"] == 40
    again = train_ensemble(configs, tmp_path / "ensemble", progress=False)  # finished: nothing to train
    assert [run.summary for run in again] == [run.summary for run in batched]


def test_diverging_copies_are_recorded_as_runs_trained_alone_would_be(tmp_path):
    configs = [tiny(lr=1e6, epochs=2), tiny(lr=1e6, epochs=2, label_noise=1.0)]
    solo = [train(config, tmp_path / "solo", progress=False) for config in configs]
    batched = train_ensemble(configs, tmp_path / "ensemble", progress=False)
    for a, b in zip(solo, batched):
        assert a.summary["status"] == b.summary["status"] == "diverged"
        assert a.summary["message"] == b.summary["message"]


def test_grouping_keeps_order_sizes_and_incompatible_runs_apart():
    configs = [tiny(label_noise=p) for p in (0.0, 0.2, 0.4, 0.6, 0.8)] + [tiny(model="mlp-3x512"), tiny(dropout=0.5)]
    groups = group_configs(configs, 2)
    assert [[c.label_noise for c in g] for g in groups[:3]] == [[0.0, 0.2], [0.4, 0.6], [0.8]]
    assert [g[0].model for g in groups[3:]] == ["mlp-3x512", "mlp-1x512"] and all(len(g) == 1 for g in groups[3:])
    assert group_key(tiny(dropout=0.5)) is None
    assert group_key(tiny(seed=1, label_noise=0.3, inputs="gaussian")) == group_key(tiny())
    assert group_key(tiny(lr=0.5)) != group_key(tiny())
    assert [len(g) for g in group_configs(configs, 1)] == [1] * 7
    with pytest.raises(RethinkgenError, match="ensemble size 0 must be an integer >= 1"):
        group_configs(configs, 0)


def test_incompatible_runs_are_refused(tmp_path):
    with pytest.raises(RethinkgenError, match="differ only in"):
        train_ensemble([tiny(), tiny(batch_size=64)], tmp_path, progress=False)
    with pytest.raises(RethinkgenError, match="without dropout"):
        train_ensemble([tiny(dropout=0.5)], tmp_path, progress=False)
