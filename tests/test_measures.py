"""Complexity measures: hand-computed values, invariances, the paper's models, Kendall's tau, stored runs, bad input."""

import math
import shutil

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

from rethinkgen import measures, models
from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.experiments import presets
from rethinkgen.measures import MeasureContext, compute
from rethinkgen.measures.analysis import analyse, granulated_tau, hyperparameter_axes, kendall_tau
from rethinkgen.measures.flatness import bisect_scale
from rethinkgen.measures.network import fold_batch_norm
from rethinkgen.measures.runs import measure_stored_run, read_measures
from rethinkgen.report.document import write_report
from rethinkgen.store import load

SMALL_BUDGET = {"sharpness_draws": 2, "scale_draws": 1, "bisection_steps": 3}


def rotation(angle):
    return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)


def linear_net(*weights, bias=False) -> nn.Sequential:
    layers = [nn.Flatten()]
    for i, w in enumerate(weights):
        layer = nn.Linear(w.shape[1], w.shape[0], bias=bias).double()
        with torch.no_grad():
            layer.weight.copy_(w)
        layers += [layer] + ([nn.ReLU()] if i < len(weights) - 1 else [])
    return nn.Sequential(*layers)


def context_for(model, x, y=None, **extra) -> MeasureContext:
    if y is None:  # the labels the network itself predicts: every margin is >= 0
        with torch.no_grad():
            y = model.eval()(x).argmax(1)
    return MeasureContext(model, x, y, **extra)


# ---------------------------------------------------------------------------------------------- values by hand
def test_norms_of_a_two_layer_net_with_known_singular_values():
    w1 = rotation(0.3) @ torch.diag(torch.tensor([3.0, 2.0], dtype=torch.float64)) @ rotation(1.1).T
    w2 = rotation(0.7) @ torch.diag(torch.tensor([5.0, 0.5], dtype=torch.float64))
    model = linear_net(w1, w2)
    x = torch.randn(20, 2, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values, unavailable = compute(context_for(model, x), ["frobenius_sum", "log_frobenius_product",
                                                          "log_spectral_product", "path_l2", "num_parameters"])
    assert not unavailable
    assert values["frobenius_sum"] == pytest.approx(math.sqrt(13) + math.sqrt(25.25))
    assert values["log_frobenius_product"] == pytest.approx(math.log(math.sqrt(13) * math.sqrt(25.25)))
    assert values["log_spectral_product"] == pytest.approx(math.log(3 * 5))
    paths = sum(w2[k, j] ** 2 * w1[j, i] ** 2 for k in range(2) for j in range(2) for i in range(2))
    assert values["path_l2"] == pytest.approx(math.sqrt(paths))
    assert values["num_parameters"] == 8


def test_spectral_norm_equals_the_largest_singular_value_for_wide_tall_and_conv_weights():
    from rethinkgen.measures.norms import spectral_norm

    generator = torch.Generator().manual_seed(0)
    for shape in [(512, 784), (784, 10), (7, 3, 5, 5), (1, 1)]:
        weight = torch.randn(*shape, dtype=torch.float64, generator=generator)
        expected = torch.linalg.svdvals(weight.reshape(shape[0], -1))[0].item()
        assert spectral_norm(weight) == pytest.approx(expected, rel=1e-12), shape


def test_margins_from_the_trainers_logits_equal_a_fresh_pass():
    model = linear_net(torch.randn(4, 6, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64))
    x = torch.randn(50, 6, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(2))
    fresh = context_for(model, x, y).margins
    with torch.no_grad():
        given = context_for(model, x, y, train_logits=model.eval()(x)).margins
    np.testing.assert_allclose(given, fresh, rtol=1e-12)
    assert not np.allclose(context_for(model, x, y, train_logits=torch.zeros(50, 3)).margins, fresh)


def test_path_norm_counts_biases_as_edges_from_a_constant_unit():
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 2))
    with torch.no_grad():
        model[1].weight.fill_(2.0), model[1].bias.fill_(3.0)
        model[3].weight.copy_(torch.tensor([[5.0], [7.0]])), model[3].bias.copy_(torch.tensor([1.0, 2.0]))
    values, _ = compute(context_for(model, torch.ones(4, 1, 1, 1)), ["path_l2"])
    # input->h->out_k: (2 w_k)^2; bias->h->out_k: (3 w_k)^2; bias->out_k: b_k^2
    assert values["path_l2"] == pytest.approx(math.sqrt((4 + 9) * (25 + 49) + 1 + 4))


def test_margin_is_the_tenth_percentile_and_normalizes():
    model = linear_net(torch.eye(3, dtype=torch.float64))  # logits = inputs
    margins = torch.tensor([3.0, 7, 1, 10, 5, 2, 9, 4, 8, 6], dtype=torch.float64)
    x = torch.zeros(10, 3, 1, 1, dtype=torch.float64)
    x[:, 0, 0, 0] = margins  # label 0, every other logit 0: the margin is x[0]
    y = torch.zeros(10, dtype=torch.long)
    values, unavailable = compute(context_for(model, x, y), ["inverse_margin", "frobenius_sum_over_margin"])
    assert values["inverse_margin"] == pytest.approx(1 / 1.9)  # numpy's percentile of 1..10 at 10%: 1.9
    assert values["frobenius_sum_over_margin"] == pytest.approx(math.sqrt(3) / 1.9)
    x[:, 0, 0, 0] = margins - 2  # now two examples are misclassified: the 10th percentile is -0.1
    values, unavailable = compute(context_for(model, x, y), ["inverse_margin", "path_l2_over_margin", "path_l2"])
    assert set(unavailable) == {"inverse_margin", "path_l2_over_margin"} and "path_l2" in values
    assert "10th-percentile margin is -0.1" in unavailable["inverse_margin"]


def test_distance_from_initialization_and_optimization_measures():
    model = linear_net(torch.eye(2, dtype=torch.float64) * 2, torch.eye(2, dtype=torch.float64))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    initial["1.weight"][0, 1] += 3.0
    initial["3.weight"][1, 0] -= 4.0
    x = torch.randn(8, 2, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    summary = {"steps_to_fit": 120, "loss_at_fit": 0.02}
    values, unavailable = compute(context_for(model, x, initial_state=initial, summary=summary),
                                  ["distance_from_init", "steps_to_fit", "loss_at_fit"])
    assert values == {"distance_from_init": pytest.approx(5.0), "steps_to_fit": 120, "loss_at_fit": 0.02}
    values, unavailable = compute(context_for(model, x, summary={"steps_to_fit": None, "loss_at_fit": None}),
                                  ["distance_from_init", "steps_to_fit", "loss_at_fit"])
    assert not values and "initial.pt" in unavailable["distance_from_init"]
    assert "never reached its fit threshold" in unavailable["steps_to_fit"]


def test_bisection_finds_the_scale_where_accuracy_falls_by_the_drop():
    calls = []

    def accuracy_at(scale):
        calls.append(scale)
        return 1.0 - scale  # falls by 0.1 at scale 0.1

    found = bisect_scale(accuracy_at, 0.9, 1e-4, 10.0, steps=20)
    assert found == pytest.approx(0.1, rel=1e-4) and len(calls) == 22  # the bounded number of evaluations
    assert bisect_scale(lambda s: 1.0, 0.9, 1e-4, 10.0, 5) == 10.0   # never drops: the upper end
    assert bisect_scale(lambda s: 0.0, 0.9, 1e-4, 10.0, 5) == 1e-4   # always below: the lower end


# ---------------------------------------------------------------------------------------------- invariances
def random_mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double()


def test_rescaling_a_relu_layer_up_and_the_next_down():
    model, rescaled = random_mlp(0), random_mlp(0)
    with torch.no_grad():
        rescaled[1].weight.mul_(7.0), rescaled[1].bias.mul_(7.0), rescaled[3].weight.div_(7.0)
    x = torch.randn(64, 6, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(model(x), rescaled(x))
    names = ["path_l2", "frobenius_sum", "sharpness", "inverse_perturbation_scale", "inverse_margin"]
    settings = {**SMALL_BUDGET, "floor": 0.0, "sharpness_scale": 0.3}  # purely relative perturbations
    before, _ = compute(context_for(model, x, settings=settings), names)
    after, _ = compute(context_for(rescaled, x, settings=settings), names)
    for name in ("path_l2", "sharpness", "inverse_perturbation_scale", "inverse_margin"):
        assert after[name] == pytest.approx(before[name], rel=1e-9), name
    assert before["sharpness"] > 0
    assert after["frobenius_sum"] > 2 * before["frobenius_sum"]  # the plain norm is not invariant


def test_flatness_measures_are_deterministic_and_grow_with_the_perturbation():
    model = random_mlp(3)
    x = torch.randn(64, 6, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    context = context_for(model, x, settings=SMALL_BUDGET)
    first, _ = compute(context, ["sharpness", "inverse_perturbation_scale"])
    second, _ = compute(context_for(model, x, settings=SMALL_BUDGET), ["sharpness", "inverse_perturbation_scale"])
    assert first == second
    larger, _ = compute(context_for(model, x, settings={**SMALL_BUDGET, "sharpness_scale": 0.5}), ["sharpness"])
    assert larger["sharpness"] > first["sharpness"]
    assert torch.equal(context.network(x), fold_batch_norm(model)(x))  # the perturbed weights were restored


# ---------------------------------------------------------------------------------------------- batch norm
def with_batch_statistics(model: nn.Module, shape, seed: int = 0) -> nn.Module:
    """Run a few training batches so the BN running statistics and shifts are not at their defaults."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        model.train()
        for _ in range(5):
            model(torch.randn((16,) + shape, generator=generator) * 2 + 0.5)
    return model.eval()


def test_batch_norm_is_folded_into_the_layer_before_it():
    model = with_batch_statistics(nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5, bias=False),
        nn.BatchNorm1d(5)), (1, 8, 8))
    inception = with_batch_statistics(models.create_model("inception-small", (1, 8, 8), 10), (1, 8, 8))
    for net in (model, inception):
        x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(5))
        folded = fold_batch_norm(net)
        assert torch.allclose(folded(x), net(x), atol=1e-4)
        assert not [m for m in folded.modules() if "Norm" in type(m).__name__]
    unfoldable = nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(64, 3))
    values, unavailable = compute(context_for(unfoldable, torch.randn(8, 1, 8, 8)), ["path_l2", "num_parameters"])
    assert values == {"num_parameters": 197} and "cannot be folded" in unavailable["path_l2"]


@pytest.mark.parametrize("name", ["mlp-1x512", "alexnet-small", "inception-small", "inception-small-nobn"])
def test_every_measure_works_on_the_papers_models(name):
    model = with_batch_statistics(models.create_model(name, (1, 8, 8), 10), (1, 8, 8))
    x = torch.randn(48, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    context = context_for(model, x, summary={"steps_to_fit": 30, "loss_at_fit": 0.05},
                          initial_state={k: torch.zeros_like(v) for k, v in model.state_dict().items()},
                          settings=SMALL_BUDGET)
    values, unavailable = compute(context, measures.measure_names())
    assert not unavailable and set(values) == set(measures.measure_names())
    assert all(math.isfinite(v) for v in values.values())
    assert values["num_parameters"] == models.count_parameters(model)


# ---------------------------------------------------------------------------------------------- the registry
def test_a_user_measure_is_registered_and_a_failing_one_spoils_no_other():
    @measures.register_measure("test_layer_count")
    def layer_count(context):
        """The number of weight layers."""
        return len(context.weights)

    @measures.register_measure("test_broken")
    def broken(context):
        return 1 / 0

    try:
        values, unavailable = compute(context_for(random_mlp(0), torch.randn(4, 6, 1, 1).double()),
                                      ["test_layer_count", "test_broken", "frobenius_sum"])
        assert values["test_layer_count"] == 3 and "frobenius_sum" in values
        assert unavailable == {"test_broken": "failed: ZeroDivisionError: division by zero"}
        assert measures.get_measure("test_layer_count").description == "The number of weight layers."
    finally:
        measures._REGISTRY.pop("test_layer_count"), measures._REGISTRY.pop("test_broken")
    with pytest.raises(RethinkgenError, match="unknown measure 'test_broken'; allowed: sharpness"):
        measures.resolve(["test_broken"])


# ---------------------------------------------------------------------------------------------- Kendall's tau
@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_matches_scipy_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 6, 40), rng.normal(size=40)
    y[:10] = y[10:20]  # ties in both
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)
    x = rng.normal(size=25)
    assert kendall_tau(x, 2 * x + 1) == pytest.approx(1.0) and kendall_tau(x, -x) == pytest.approx(-1.0)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None and kendall_tau([1], [2]) is None


def test_granulated_tau_by_hand():
    # 8 runs: model (with its learning rate) x label noise x seed; the gap grows with noise, and with model b
    rows = [("a", 0, 0, 10), ("a", 1, 0, 20), ("a", 0, 1, 11), ("a", 1, 1, 21),
            ("b", 0, 0, 5), ("b", 1, 0, 15), ("b", 0, 1, 9), ("b", 1, 1, 8)]
    configs = [{"model": m, "lr": 0.01 if m == "a" else 0.1, "label_noise": p, "seed": s, "epochs": 5,
                "device": "cpu" if s else "cuda"} for m, p, s, _ in rows]
    gaps = [0.8 * p + 0.1 * (m == "b") + 0.01 * s for m, p, s, _ in rows]
    values = [v for *_, v in rows]
    axes = hyperparameter_axes(configs)
    assert axes == {"label_noise": ["label_noise"], "lr+model": ["lr", "model"]}  # no seed, device or epochs
    overall, per_axis = granulated_tau(values, gaps, configs, axes)
    # label noise, per (model, seed): concordant, concordant, concordant, discordant -> 0.5
    # model, per (noise, seed): b has the larger gap and the smaller value in all four -> -1
    assert per_axis["label_noise"].tau == pytest.approx(0.5) and per_axis["label_noise"].runs == 8
    assert per_axis["lr+model"].tau == pytest.approx(-1.0)
    assert overall.tau == pytest.approx(-0.25) and overall.runs == 8
    records = [{"config": c, "gap": g, "measures": {"m": v}} for c, g, v in zip(configs, gaps, values)]
    records[0]["measures"] = {}  # a run without the measure leaves its groups
    _, [row] = analyse(records, ["m"])
    assert row.overall.runs == 7 and row.overall.tau == pytest.approx(kendalltau(values[1:], gaps[1:]).statistic)
    assert row.axes["label_noise"].runs == 6 and row.axes["label_noise"].tau == pytest.approx((1 + 1 - 1) / 3)


def test_the_measures_preset():
    plan = presets.build("measures")
    assert len(plan.runs) == 2 * 3 * 2 * 2  # models x label noise x weight decay x seeds
    configs = [run.config.to_dict() for run in plan.runs]
    assert set(hyperparameter_axes(configs)) == {"model", "label_noise", "weight_decay"}
    assert {c["seed"] for c in configs} == {0, 1} and all(c["stop_at_fit"] for c in configs)


# ---------------------------------------------------------------------------------------------- stored runs
TINY = dict(dataset="digits", subset=64, test_subset=64, epochs=2, model="mlp-1x512", log_every=1)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for noise in (0.0, 1.0):
        for decay in (0.0, 5e-3):
            train(RunConfig(**TINY, label_noise=noise, weight_decay=decay), root, progress=False)
    train(RunConfig(**TINY, label_noise=0.5, measures="none"), root, progress=False)
    return root


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cheap_measures_are_stored_with_each_run(runs_dir):
    frame = load(runs_dir)
    measured = frame[frame["label_noise"] != 0.5]
    assert measured["measure_path_l2"].notna().all() and measured["measure_frobenius_sum"].notna().all()
    assert "measure_sharpness" not in frame or frame["measure_sharpness"].isna().all()  # flatness is opt-in
    unmeasured = frame[frame["label_noise"] == 0.5].iloc[0]
    assert not (runs_dir / unmeasured["run_id"] / "measures.json").exists()
    stored = read_measures(runs_dir / measured.iloc[0]["run_id"])
    assert "sharpness" not in stored["values"] and set(stored["values"]) | set(stored["unavailable"]) == set(
        measures.measure_names(cheap_only=True))


def test_measures_command_computes_what_is_missing_and_ranks_the_measures(runs_dir, capsys, tmp_path):
    run_ids = list(load(runs_dir)["run_id"])
    before = {run_id: read_measures(runs_dir / run_id)["values"] for run_id in run_ids}
    code, out, err = run_cli(capsys, "measures", "--runs", str(runs_dir), "--quiet")
    assert code == 0, err
    assert "measured 5 run(s)" in out and "over 5 completed run(s)" in out
    assert "hyperparameter axes: label_noise, weight_decay" in out
    assert "| sharpness | flatness |" in out and "| path_l2 | norm |" in out and "granulated (runs)" in out
    frame = load(runs_dir)
    assert frame["measure_sharpness"].notna().all() and frame["measure_path_l2"].notna().all()
    for run_id in run_ids:  # rebuilt from the checkpoint, on the run's own (randomized) data: the same values
        after = read_measures(runs_dir / run_id)["values"]
        for name, value in before[run_id].items():
            assert after[name] == pytest.approx(value, rel=1e-9), (run_id, name)
    code, out, _ = run_cli(capsys, "measures", "--runs", str(runs_dir), "--quiet")
    assert code == 0 and "measured 0 run(s)" in out and "5 already had every measure" in out
    paths = write_report(runs_dir, tmp_path / "report")
    assert tmp_path / "report" / "measures-against-gap.png" in paths
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Complexity measures against the generalization gap" in markdown and "| sharpness | flatness |" in markdown


def test_recompute_gives_the_values_stored_at_train_time(tmp_path):
    run_id = train(RunConfig(**{**TINY, "epochs": 30}), tmp_path, progress=False).run_id  # has a positive margin
    runs_dir = tmp_path
    stored = read_measures(runs_dir / run_id)["values"]
    names = ["frobenius_sum", "distance_from_init", "inverse_margin"]
    assert measure_stored_run(runs_dir, run_id, names, "cpu", recompute=True) == names
    again = read_measures(runs_dir / run_id)["values"]
    assert again["frobenius_sum"] == pytest.approx(stored["frobenius_sum"], rel=1e-12)
    # at train time the margins come from the last evaluation's logits: the same up to float32 summation order
    assert again["inverse_margin"] == pytest.approx(stored["inverse_margin"], rel=1e-5)


def test_bad_input(runs_dir, tmp_path, capsys):
    code, _, err = run_cli(capsys, "measures", "--runs", str(runs_dir), "--only", "path-norm")
    assert code == 2 and "unknown measure 'path-norm'; allowed: sharpness" in err
    code, _, err = run_cli(capsys, "measures", "--runs", str(tmp_path / "nothing"))
    assert code == 2 and "is not a runs folder" in err
    code, _, err = run_cli(capsys, "run", "--measures", "some", "--runs", str(tmp_path))
    assert code == 2 and "argument --measures: unknown value 'some'; allowed: none, cheap, all" in err
    code, _, err = run_cli(capsys, "measures", "--runs", str(runs_dir), "--import", "no_such_module_here")
    assert code == 2 and "cannot import 'no_such_module_here'" in err

    copy = tmp_path / "copy"
    shutil.copytree(runs_dir, copy)
    run_id = load(copy)["run_id"].iloc[0]
    (copy / run_id / "checkpoint.pt").unlink()
    (copy / run_id / "measures.json").unlink()
    with pytest.raises(RethinkgenError, match=f"run {run_id} has no checkpoint.pt"):
        measure_stored_run(copy, run_id, ["path_l2"], "cpu")
    code, out, err = run_cli(capsys, "measures", "--runs", str(copy), "--quiet", "--only", "path_l2")
    assert code == 1 and f"rethinkgen: warning: run {run_id} has no checkpoint.pt" in err
    assert "| path_l2 | norm |" in out  # the other runs are still tested
