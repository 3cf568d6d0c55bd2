"""Sweeps: expansion, skipping and resuming, isolation of failures, workers, presets, the shared index."""

import json
import multiprocessing
import textwrap

import pytest

from helpers import FAILING_MODEL_SOURCE, interrupt_after
from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.engine import trainer as train_module
from rethinkgen.errors import RethinkgenError
from rethinkgen.experiments import presets
from rethinkgen.experiments.sweep import expand, load_spec, run_sweep
from rethinkgen.store import RunStore, load

TINY_BASE = {"dataset": "digits", "subset": 100, "test_subset": 50, "epochs": 2, "log_every": 1}


def spec(**extra):
    return {"name": "t", "base": dict(TINY_BASE), **extra}


def test_product_zip_and_seeds_expand_to_every_combination():
    sweep = expand(spec(axes={"label_noise": [0.0, 0.5, 1.0], "model": ["mlp-1x512", "mlp-3x512"]},
                        zip={"inputs": ["original", "gaussian"], "lr": [0.01, 0.02]}, seeds=[0, 1]))
    assert len(sweep.runs) == 3 * 2 * 2 * 2
    combos = {(r.config.label_noise, r.config.model, r.config.inputs, r.config.lr, r.config.seed) for r in sweep.runs}
    assert len(combos) == 24
    assert all((r.config.inputs, r.config.lr) in {("original", 0.01), ("gaussian", 0.02)} for r in sweep.runs)
    assert "label_noise=0.5, model=mlp-3x512, inputs=gaussian, lr=0.02" in {r.label for r in sweep.runs}
    assert len({r.config.run_id() for r in sweep.runs}) == 24


@pytest.mark.parametrize("bad, message", [
    ({"axes": {"learning_rate": [0.1]}}, "unknown axis 'learning_rate'"),
    ({"zip": {"colour": [1]}}, "unknown zip axis 'colour'"),
    ({"axes": {"label_noise": []}}, "axis 'label_noise' needs a non-empty list"),
    ({"axes": {"label_noise": 0.5}}, "axis 'label_noise' needs a non-empty list"),
    ({"zip": {"label_noise": [0.1, 0.2], "seed": [1]}}, "zip axes must have equal lengths"),
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"axes": {"label_noise": [0.5, 2.0]}}, "label_noise 2.0 is outside [0, 1]"),
    ({"extra": 1}, "unknown sweep key 'extra'"),
])
def test_bad_specs_are_refused_before_anything_starts(bad, message):
    with pytest.raises(RethinkgenError, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand(spec(**bad))


def test_spec_file_and_cli(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent("""
        name: noise
        base: {dataset: digits, subset: 100, test_subset: 50, epochs: 2}
        axes: {label_noise: [0.0, 1.0]}
    """))
    assert load_spec(path).name == "noise" and len(load_spec(path).runs) == 2
    assert main(["sweep", str(path), "--runs", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s) trained: 2 complete" in out
    assert main(["sweep", str(path), "--runs", str(tmp_path / "runs"), "--quiet"]) == 0
    again = capsys.readouterr().out
    assert "0 run(s) trained" in again and "2 skipped" in again
    manifest = json.loads((tmp_path / "runs" / "sweeps" / "noise.json").read_text())
    assert [r["label"] for r in manifest["runs"]] == ["label_noise=0.0", "label_noise=1.0"]


def test_rerun_skips_finished_runs_and_resumes_interrupted_ones(tmp_path):
    sweep = expand(spec(axes={"label_noise": [0.0, 1.0]}, base={**TINY_BASE, "epochs": 3}))
    first = sweep.runs[1].config
    with pytest.raises(KeyboardInterrupt):
        train_module.train(first, tmp_path, progress=False, on_epoch_end=interrupt_after(1))
    outcome = run_sweep(sweep, tmp_path, progress=False)
    assert [status for _, status, _ in outcome.ran] == ["complete", "complete"]
    assert json.loads((tmp_path / first.run_id() / "summary.json").read_text())["epochs_completed"] == 3
    again = run_sweep(sweep, tmp_path, progress=False)
    assert again.ran == [] and len(again.skipped) == 2


@pytest.fixture
def flaky_model(tmp_path, monkeypatch):
    (tmp_path / "flaky_models.py").write_text(FAILING_MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "flaky_models:build"


def test_a_failing_or_diverging_run_never_stops_the_sweep(tmp_path, flaky_model):
    sweep = expand(spec(zip={"model": [flaky_model, "mlp-1x512", "mlp-1x512"], "lr": [0.01, 1e6, 0.01],
                             "epochs": [2, 4, 2]}, base={**TINY_BASE, "subset": 200}))
    outcome = run_sweep(sweep, tmp_path / "runs", progress=False)
    assert [status for _, status, _ in outcome.ran] == ["failed", "diverged", "complete"]
    assert "boom in training" in outcome.ran[0][2]
    assert outcome.failed == 1 and any("failed:" in line and "boom" in line for line in outcome.lines())
    assert load(tmp_path / "runs").set_index("lr").loc[0.01].shape[0] == 2
    again = run_sweep(sweep, tmp_path / "runs", progress=False)
    assert again.ran == []  # failed runs are retried only when asked
    retried = run_sweep(sweep, tmp_path / "runs", progress=False, retry_failed=True)
    assert [(run.label, status) for run, status, _ in retried.ran] == [(sweep.runs[0].label, "failed")]


def test_runs_that_cannot_be_built_are_refused_before_any_starts(tmp_path, monkeypatch):
    (tmp_path / "fixed_size.py").write_text(
        "from torch import nn\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sweep = expand(spec(axes={"model": ["mlp-1x512", "fixed_size:build"]}))
    with pytest.raises(RethinkgenError, match="cannot take input shape"):
        run_sweep(sweep, tmp_path / "runs", progress=False)
    assert not any((tmp_path / "runs").glob("*/summary.json"))
    with pytest.raises(RethinkgenError, match="subset 5000 exceeds the 1347 examples"):
        run_sweep(expand(spec(base={**TINY_BASE, "subset": 5000})), tmp_path / "runs", progress=False)


def test_workers_run_in_parallel_processes_into_one_store(tmp_path):
    sweep = expand(spec(axes={"label_noise": [0.0, 0.3, 0.6, 1.0]}))
    outcome = run_sweep(sweep, tmp_path, workers=2, progress=False)
    assert sorted(status for _, status, _ in outcome.ran) == ["complete"] * 4
    frame = load(tmp_path)
    assert sorted(frame["label_noise"]) == [0.0, 0.3, 0.6, 1.0] and set(frame["status"]) == {"complete"}
    # a parallel run gives the same numbers as the same run alone, up to the thread count's rounding
    alone = train_module.train(sweep.runs[3].config, tmp_path / "alone", progress=False).summary
    row = frame.set_index("label_noise").loc[1.0]
    assert abs(row["train_accuracy"] - alone["train_accuracy"]) < 0.05


def test_ensembles_train_compatible_runs_together_and_skip_them_later(tmp_path, monkeypatch):
    from rethinkgen.experiments import executors

    sizes, real = [], executors.train_ensemble
    monkeypatch.setattr(executors, "train_ensemble",
                        lambda configs, *a, **k: sizes.append(len(configs)) or real(configs, *a, **k))
    sweep = expand(spec(axes={"label_noise": [0.0, 0.5, 1.0], "model": ["mlp-1x512", "mlp-3x512"]},
                        base={**TINY_BASE, "dropout": 0.0}))
    sweep.runs.append(expand(spec(base={**TINY_BASE, "dropout": 0.5})).runs[0])  # must train alone
    outcome = run_sweep(sweep, tmp_path, ensemble=2, progress=False)
    assert [status for _, status, _ in outcome.ran] == ["complete"] * 7
    assert sizes == [2, 2]  # per model noise 0 and 0.5 together; noise 1.0 and the dropout run alone by train()
    frame = load(tmp_path)
    assert len(frame) == 7 and set(frame["status"]) == {"complete"}
    alone = train_module.train(sweep.runs[2].config, tmp_path / "alone", progress=False).summary
    row = frame.set_index("run_id").loc[sweep.runs[2].config.run_id()]
    assert abs(row["train_accuracy"] - alone["train_accuracy"]) < 0.05
    again = run_sweep(sweep, tmp_path, ensemble="auto", progress=False)
    assert not again.ran and len(again.skipped) == 7


def test_ensemble_size_auto_gives_each_worker_a_share():
    from rethinkgen.experiments.sweep import ensemble_size

    assert ensemble_size("auto", 11, 1) == 11 and ensemble_size("auto", 11, 2) == 6
    assert ensemble_size("auto", 100, 1) == 32 and ensemble_size("auto", 0, 1) == 1 and ensemble_size("4", 11, 1) == 4
    with pytest.raises(RethinkgenError, match="ensemble 0 must be"):
        ensemble_size(0, 11, 1)


def _register_many(root, worker, count):
    store = RunStore(root)
    for i in range(count):
        store.register(f"{worker:06x}{i:06x}", {"worker": worker}, {"status": "complete", "i": i})


def test_concurrent_processes_registering_in_the_index_lose_nothing(tmp_path):
    RunStore(tmp_path)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_register_many, args=(str(tmp_path), w, 60)) for w in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
        assert p.exitcode == 0
    rows = RunStore(tmp_path).rows()
    assert len(rows) == 240 and len({r["run_id"] for r in rows}) == 240


def test_dry_run_lists_runs_and_estimates_without_training(tmp_path, capsys):
    assert main(["sweep", "--preset", "figure1bc", "--models", "mlp-1x512", "--dry-run", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "11 run(s)" in out and "label noise 0.3" in out and "CPU hours" in out
    assert not (tmp_path / "index.sqlite").exists() or not list(tmp_path.glob("*/summary.json"))


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--preset", "figure9"], "argument --preset: unknown value 'figure9'; allowed: figure1a"),
    (["sweep", "--preset", "table1", "--scale", "huge"], "argument --scale: unknown value 'huge'; allowed: paper, small, tiny"),
    (["sweep"], "give either a sweep spec file or --preset"),
    (["sweep", "--preset", "table4", "--models", "resnet"], "unknown model 'resnet'"),
    (["sweep", "--preset", "figure2b", "--ensemble", "many"], "ensemble 'many' must be a whole number >= 1 or 'auto'"),
])
def test_bad_sweep_arguments(tmp_path, capsys, argv, message):
    assert main(argv + ["--runs", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- presets
@pytest.mark.parametrize("preset, runs", [("figure1a", 5), ("figure1bc", 33), ("table1", 19), ("table4", 6),
                                          ("figure2b", 2), ("table2", 7)])
def test_each_preset_has_the_runs_of_its_experiment(preset, runs):
    sweep = presets.build(preset)
    assert len(sweep.runs) == runs
    assert len({r.config.run_id() for r in sweep.runs}) == runs


def test_table1_rows_match_the_paper():
    rows = {(r.group["model"], r.group["crop"], r.group["weight_decay"], r.group["random_labels"])
            for r in presets.build("table1").runs}
    from rethinkgen.experiments.presets.table1 import TABLE1
    assert rows == set(TABLE1)
    crop_run = next(r for r in presets.build("table1").runs if r.group["crop"])
    assert crop_run.config.augment == ("crop",) and crop_run.config.stop_at_fit


def test_table2_rows_and_settings_match_the_paper():
    from rethinkgen.experiments.presets.table2 import TABLE2

    sweep = presets.build("table2")
    rows = {(r.group["random_labels"], r.group["augmentation"], r.group["dropout"], r.group["weight_decay"])
            for r in sweep.runs}
    assert rows == set(TABLE2)
    for run in sweep.runs:
        c, g = run.config, run.group
        assert c.dataset == "imagefolder" and c.model == "inception-v3" and not c.stop_at_fit
        assert (c.image_size, c.crop, c.batch_size, c.subset) == (86, "75", 32, 256)
        assert c.label_noise == (1.0 if g["random_labels"] else 0.0)
        assert c.augment == (("crop", "flip", "jitter") if g["augmentation"] else ())
        assert c.dropout == (0.2 if g["dropout"] else 0.0) and c.weight_decay == (4e-5 if g["weight_decay"] else 0.0)
    paper = presets.build("table2", scale="paper").runs[0].config
    assert (paper.image_size, paper.crop, paper.subset, paper.epochs) == (342, "299", None, 250)
    assert paper.lr_decay == pytest.approx(0.94 ** 0.5)
    # any other data and model take the same rows, without the image-folder settings
    digits = presets.build("table2", dataset="digits", models=["mlp-1x512"]).runs[0].config
    assert digits.image_size is None and digits.crop == "auto" and digits.batch_size == 32


def test_scales_set_data_size_and_a_per_step_matched_schedule():
    paper = presets.build("figure1a", scale="paper").runs[0].config
    assert paper.dataset == "cifar10" and paper.subset is None and paper.lr_decay == 0.95 and paper.epochs == 64
    tiny = presets.build("figure1a", scale="tiny").runs[0].config
    assert tiny.dataset == "digits" and tiny.subset == 256 and tiny.test_subset == 256
    assert tiny.lr_decay == pytest.approx(0.95 ** (2 / 391))  # 256 images = 2 steps of 128
    small = presets.build("figure1bc", scale="small", dataset="fashion-mnist", seeds=[0, 1], models=["mlp-1x512"])
    assert len(small.runs) == 22 and small.runs[0].config.subset == 5000
    assert presets.build("table4").runs[1].config.lr_decay == pytest.approx(0.999 ** (2 / 391))


def test_figure2b_runs_its_whole_budget_and_the_others_stop_at_fit():
    assert not any(r.config.stop_at_fit for r in presets.build("figure2b").runs)
    assert all(r.config.stop_at_fit for r in presets.build("figure1bc").runs)


def test_preset_overrides_reach_every_run():
    sweep = presets.build("figure1bc", models=["mlp-1x512"], fit_threshold=0.95)
    assert {r.config.fit_threshold for r in sweep.runs} == {0.95}
    assert RunConfig.from_mapping({"fit_threshold": 0.95}).fit_threshold == 0.95


def test_two_sweeps_sharing_runs_never_train_one_run_twice_at_once(tmp_path):
    from rethinkgen.engine.trainer import run_lock
    from rethinkgen.experiments.executors import train_group

    config = expand(spec()).runs[0].config
    run_dir = tmp_path / config.run_id()
    run_dir.mkdir(parents=True)
    with run_lock(run_dir, config.run_id()):
        assert train_group([config.to_dict()], str(tmp_path), None)[0][0] == "busy"
