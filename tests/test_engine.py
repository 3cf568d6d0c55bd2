"""The engine: one evaluation for every caller, the epoch hook of the one training loop, provenance."""

import json

import pytest
import torch
from torch import nn

from helpers import interrupt_after
from rethinkgen.config import RunConfig
from rethinkgen.engine.ensemble import train_ensemble
from rethinkgen.engine.evaluate import CPU_CONV_EVAL_CHUNK, evaluation_plan, metrics_from_logits, predict
from rethinkgen.engine.provenance import provenance
from rethinkgen.engine.seeds import epoch_order
from rethinkgen.engine.speedups import Speedups
from rethinkgen.engine.trainer import train


def tiny(**changes) -> RunConfig:
    values = dict(dataset="digits", subset=120, test_subset=60, model="mlp-1x512", epochs=3, log_every=2,
                  batch_size=32)
    return RunConfig(**{**values, **changes})


class Recorder:
    """An on_epoch_end hook that notes what each call sees."""

    def __init__(self):
        self.calls = []

    def __call__(self, run, epoch):
        checkpoint = torch.load(run.run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
        self.calls.append((run.run_id, epoch, len(run.history), checkpoint["epochs"], run.summary["epochs_completed"]))


def test_predict_evaluates_in_eval_mode_in_chunks_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    x = torch.randn(10, 3, 2, 2)
    logits = predict(model, x, batch_size=4)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        assert torch.equal(logits, torch.cat([model(x[:4]), model(x[4:8]), model(x[8:])]))
    assert not logits.requires_grad
    assert not model.training  # restored to eval as well


def test_the_evaluation_plan_chunks_conv_nets_on_the_cpu_only_when_asked():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    x = torch.randn(2, 3, 8, 8)
    assert evaluation_plan(conv, x, 1000, Speedups()) == (CPU_CONV_EVAL_CHUNK, Speedups(channels_last=True))
    assert evaluation_plan(nn.Flatten(), x, 1000, Speedups()) == (1000, Speedups())
    calls = []
    conv.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    predict(conv, torch.randn(300, 3, 8, 8), 1000)
    predict(conv, torch.randn(300, 3, 8, 8), 1000, plan=False)
    assert calls == [128, 128, 44, 300]


def test_metrics_from_logits():
    class Labels:
        y_train, y_test = torch.tensor([0, 1, 2, 1]), torch.tensor([2, 2])
        changed, y_changed_original = torch.tensor([1, 3]), torch.tensor([1, 0])

    logits = torch.eye(3)[[0, 1, 1, 0]] * 5
    metrics = metrics_from_logits(logits, torch.eye(3)[[2, 0]] * 5, Labels)
    assert metrics["train_accuracy"] == 0.5 and metrics["test_accuracy"] == 0.5
    assert metrics["changed_original_accuracy"] == 1.0  # guesses 1 and 0 are the original labels
    # guesses [0, 1, 1, 0]: example 0 (unchanged) and 1 (changed) are right, 2 (unchanged) and 3 (changed) wrong
    assert metrics["unchanged_accuracy"] == 0.5 and metrics["changed_accuracy"] == 0.5
    assert metrics["train_top5_accuracy"] is None  # 3 classes: top-5 is always right
    assert metrics["train_loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, Labels.y_train).item())


def test_the_epoch_order_depends_on_seed_and_epoch_alone():
    generator, order = epoch_order(3, 5, 50)
    assert sorted(order.tolist()) == list(range(50))
    assert torch.equal(order, epoch_order(3, 5, 50)[1]) and not torch.equal(order, epoch_order(3, 6, 50)[1])
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=epoch_order(3, 5, 50)[0]))


def test_on_epoch_end_is_called_after_each_recorded_epoch_of_a_run(tmp_path):
    recorder = Recorder()
    result = train(tiny(), tmp_path, progress=False, on_epoch_end=recorder)
    assert recorder.calls == [(result.run_id, epoch, epoch, epoch, epoch) for epoch in (1, 2, 3)]
    assert result.summary["status"] == "complete"


def test_on_epoch_end_is_called_for_every_copy_of_an_ensemble(tmp_path):
    configs = [tiny(epochs=2), tiny(epochs=2, label_noise=1.0)]
    recorder = Recorder()
    results = train_ensemble(configs, tmp_path, progress=False, on_epoch_end=recorder)
    ids = [result.run_id for result in results]
    assert recorder.calls == [(run_id, epoch, epoch, epoch, epoch) for epoch in (1, 2) for run_id in ids]


def test_a_hook_that_fails_fails_the_run(tmp_path):
    def broken(run, epoch):
        raise ValueError("hook broke")

    with pytest.raises(ValueError, match="hook broke"):
        train(tiny(), tmp_path, progress=False, on_epoch_end=broken)
    failed = json.loads((tmp_path / tiny().run_id() / "summary.json").read_text())
    assert failed["status"] == "failed" and "hook broke" in failed["message"] and failed["epochs_completed"] == 1


def test_every_run_records_its_provenance_and_schema_version(tmp_path):
    import platform

    import rethinkgen

    result = train(tiny(epochs=1), tmp_path, progress=False)
    s = result.summary
    assert s["schema_version"] == 2
    assert (s["rethinkgen_version"], s["torch_version"]) == (rethinkgen.__version__, torch.__version__)
    assert s["python_version"] == platform.python_version()
    assert s["torch_threads"] == torch.get_num_threads() >= 1
    assert s["device"] == "cpu" and isinstance(s["device_name"], str) and s["device_name"]
    assert json.loads((result.run_dir / "summary.json").read_text())["device_name"] == s["device_name"]
    checkpoint = torch.load(result.run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["schema_version"] == 2 and type(checkpoint["schema_version"]) is int
    batched = train_ensemble([tiny(epochs=1, label_noise=0.5)], tmp_path, progress=False)[0].summary
    assert {k: batched[k] for k in provenance(torch.device("cpu"))} == provenance(torch.device("cpu"))


def test_the_cpu_name_falls_back_to_platform_where_there_is_no_cpuinfo(tmp_path, monkeypatch):
    import platform

    from rethinkgen.engine import provenance as module

    monkeypatch.setattr(module, "CPUINFO", tmp_path / "missing")
    assert module.device_name(torch.device("cpu")) == (platform.processor() or platform.machine() or "unknown")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Example CPU 9000\n")
    monkeypatch.setattr(module, "CPUINFO", tmp_path / "cpuinfo")
    assert module.device_name(torch.device("cpu")) == "Example CPU 9000"


def test_a_schema_1_run_without_provenance_resumes_and_gains_it(tmp_path):
    config = tiny(epochs=3)
    reference = train(config, tmp_path / "reference", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "old", progress=False, on_epoch_end=interrupt_after(2))
    run_dir = tmp_path / "old" / config.run_id()
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    del state["schema_version"]  # as the runs written before provenance existed
    torch.save(state, run_dir / "checkpoint.pt")
    summary = json.loads((run_dir / "summary.json").read_text())
    old = {k: v for k, v in summary.items() if k not in provenance(torch.device("cpu"))}
    (run_dir / "summary.json").write_text(json.dumps(old))
    resumed = train(config, tmp_path / "old", progress=False)
    assert resumed.summary["status"] == "complete" and resumed.summary["schema_version"] == 2
    timing = {"train_seconds", "wall_seconds", "images_per_second"}
    assert [{k: v for k, v in row.items() if k not in timing} for row in resumed.metrics] == \
        [{k: v for k, v in row.items() if k not in timing} for row in reference.metrics]
