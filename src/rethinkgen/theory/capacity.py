"""Capacity measures of Section 2.2, made measurable: Rademacher complexity and uniform stability.

Rademacher complexity. On a sample x_1..x_n, R_n(H) = E_sigma[sup_{h in H} (1/n) sum_i sigma_i h(x_i)]
with sigma_i uniform on {-1, +1}. The paper's point is that the randomization test is exactly this
experiment: the sup is approximated by *training* on the random signs, and a class that fits any
random labelling has R_n close to its trivial bound 1, so the bound says nothing. ``rademacher``
draws the signs, calls a fitter (a training procedure standing in for the sup) and averages the
correlation of the fitted signs with sigma.

Uniform stability. An algorithm is stable when replacing one training example changes its loss on any
point by little. The paper gives no experiment; ``stability_probe`` measures it directly: two copies
of a network, same init and same data order, trained on sets that differ in one example, and how far
their test losses, predictions and weights drift apart epoch by epoch.

Every random draw comes from an explicit seed, and on the CPU a run is bit-for-bit repeatable.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from rethinkgen import models
from rethinkgen.checks import integer, number
from rethinkgen.data.dataset import Dataset
from rethinkgen.data.preprocess import crop_size_for, preprocess
from rethinkgen.engine.evaluate import predict
from rethinkgen.engine.seeds import epoch_order, epoch_seed
from rethinkgen.errors import RethinkgenError, choice_error
from rethinkgen.report.figures import plt, save

Predictor = Callable[[np.ndarray], np.ndarray]
Fitter = Callable[[np.ndarray, np.ndarray], Predictor]

DEFAULT_NETWORK_EPOCHS = 100
EVAL_BATCH = 1024  # inputs per forward pass when a trained network is evaluated


# ---------------------------------------------------------------------------------------------------
# validation helpers: every bad value becomes a one-line RethinkgenError


def _samples(X) -> np.ndarray:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise RethinkgenError("X must be a numeric array [n, ...]") from None
    if X.ndim < 2 or len(X) < 1 or X[0].size < 1:
        raise RethinkgenError(f"X of shape {X.shape} must be an array [n, ...] with n >= 1 and features")
    if not np.isfinite(X).all():
        raise RethinkgenError("X must be finite (it holds NaN or infinity)")
    return X


def _signs(values: np.ndarray) -> np.ndarray:
    """Real scores to +-1; a score of exactly 0 counts as +1."""
    return np.where(values >= 0, 1.0, -1.0)


# ---------------------------------------------------------------------------------------------------
# Rademacher complexity


@dataclass
class RademacherResult:
    """One estimate of the empirical Rademacher complexity: the correlation of every draw and their summary.

    ``std`` is the sample standard deviation over draws (0 for a single draw).
    """

    values: list[float]
    mean: float
    std: float
    n: int
    draws: int
    name: str = ""
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The result as JSON-ready data."""
        return asdict(self)


def constant_fitter() -> Fitter:
    """The best constant predictor, sign(mean sigma): a class of two functions, so R_n is about 1/sqrt(n)."""
    def fit(X: np.ndarray, sigma: np.ndarray) -> Predictor:
        value = 1.0 if np.mean(sigma) >= 0 else -1.0
        return lambda X_new: np.full(len(X_new), value)
    return fit


def linear_fitter() -> Fitter:
    """Minimum-norm least squares on [x, 1]: with n <= d points in general position it interpolates sigma."""
    def fit(X: np.ndarray, sigma: np.ndarray) -> Predictor:
        design = np.hstack([X.reshape(len(X), -1), np.ones((len(X), 1))])
        weights = np.linalg.lstsq(design, sigma, rcond=None)[0]
        return lambda X_new: X_new.reshape(len(X_new), -1) @ weights[:-1] + weights[-1]
    return fit


def _as_images(X: np.ndarray) -> torch.Tensor:
    """[n, d] -> [n, 1, 1, d], [n, H, W] -> [n, 1, H, W], [n, C, H, W] unchanged: what the models take."""
    x = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    if x.ndim == 2:
        return x[:, None, None, :]
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x
    raise RethinkgenError(f"network input of shape {tuple(x.shape)} must be [n, d], [n, H, W] or [n, C, H, W]")


def _train_epoch(model, optimizer, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, batch_size: int):
    model.train()
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def _order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's data order, from (seed, epoch) alone, as the trainer draws it."""
    return epoch_order(seed, epoch, n)[1]


def _new_model(model: str, input_shape, num_classes: int, seed: int):
    """A freshly initialized model from ``seed``, leaving the global torch RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.create_model(model, tuple(input_shape), num_classes)


def network_fitter(model: str = "mlp-1x512", epochs: int = DEFAULT_NETWORK_EPOCHS, lr: float | None = None,
                   batch_size: int = 128, seed: int = 0, stop_at_fit: bool = True) -> Fitter:
    """Train a rethinkgen model on classes (sigma + 1) / 2 and score with logit[1] - logit[0].

    SGD with momentum 0.9 and cross entropy, on the CPU, from the same init (``seed``) for every draw,
    with the data order of each epoch drawn from (seed, epoch). ``lr`` defaults to the model's paper rate.
    With ``stop_at_fit`` training ends once every sign is reproduced: the sup is reached, more epochs
    cannot raise the correlation, and they would only cost time.

    Args:
        model: a registered model name.
        epochs: the most epochs of training.
        lr: the learning rate (None: the model's default).
        batch_size: the minibatch size.
        seed: seeds the initialization and the data order.
        stop_at_fit: end training once every sign is reproduced.
    """
    epochs = integer("epochs", epochs, 1)
    batch_size = integer("batch_size", batch_size, 1)
    seed = integer("seed", seed, 0)
    models.get_factory(model)  # a bad model name (or a user's module that cannot be imported) is said now
    lr = models.default_lr(model) if lr is None else number("lr", lr, 0, low_open=True)

    def fit(X: np.ndarray, sigma: np.ndarray) -> Predictor:
        x = _as_images(X)
        y = torch.as_tensor((np.asarray(sigma) > 0).astype(np.int64))
        net = _new_model(model, x.shape[1:], 2, seed)
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        for epoch in range(epochs):
            _train_epoch(net, optimizer, x, y, _order(len(x), seed, epoch), batch_size)
            if stop_at_fit and bool((predict(net, x, EVAL_BATCH, plan=False).argmax(1) == y).all()):
                break
        net.eval()

        def score(X_new: np.ndarray) -> np.ndarray:
            logits = predict(net, _as_images(X_new), EVAL_BATCH, plan=False)
            return (logits[:, 1] - logits[:, 0]).double().numpy()
        return score
    return fit


FITTERS: dict[str, Callable[..., Fitter]] = {
    "constant": constant_fitter,
    "linear": linear_fitter,
    "network": network_fitter,
}


def make_fitter(name: str, epochs: int = DEFAULT_NETWORK_EPOCHS, lr: float | None = None,
                batch_size: int = 128, seed: int = 0, stop_at_fit: bool = True) -> Fitter:
    """A fitter by name: ``constant``, ``linear``, ``network`` (MLP 1x512) or any model name of the registry.

    The training options only apply to networks; the closed-form fitters ignore them.

    Args:
        name: ``constant``, ``linear``, ``network`` or a model name.
        epochs: the most epochs of a network's training.
        lr: a network's learning rate (None: the model's default).
        batch_size: a network's minibatch size.
        seed: seeds a network's initialization and data order.
        stop_at_fit: end a network's training once it reproduces every sign.
    """
    if name == "network" or models.entry(name) or (isinstance(name, str) and ":" in name):
        model = "mlp-1x512" if name == "network" else name
        return network_fitter(model=model, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                              stop_at_fit=stop_at_fit)
    if name in FITTERS:
        return FITTERS[name]()
    raise choice_error("fitter", name, [*FITTERS, *models.model_names()])


def rademacher(X: np.ndarray, fit: Fitter | str, draws: int = 5, seed: int = 0) -> RademacherResult:
    """Estimate R_n on the rows of ``X``: for each of ``draws`` sign vectors sigma, fit and correlate.

    The correlation of one draw is (1/n) sum_i sigma_i sign(h(x_i)), h = fit(X, sigma); it is 1 when h
    reproduces every random sign. ``fit`` is a callable ``fit(X, sigma) -> predict`` or a fitter name.

    Args:
        X: the n inputs, ``[n, ...]``.
        fit: ``fit(X, sigma) -> predict`` or a fitter name (see ``make_fitter``).
        draws: sign vectors drawn.
        seed: seeds the sign vectors.
    """
    X = _samples(X)
    draws = integer("draws", draws, 1)
    seed = integer("seed", seed, 0)
    name = fit if isinstance(fit, str) else getattr(fit, "__name__", "")
    if isinstance(fit, str):
        fit = make_fitter(fit)
    if not callable(fit):
        raise RethinkgenError(f"fit {fit!r} must be a fitter name or a callable fit(X, sigma) -> predict")
    n = len(X)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        sigma = rng.choice(np.array([-1.0, 1.0]), size=n)
        predict = fit(X, sigma)
        scores = np.asarray(predict(X), dtype=np.float64)
        if scores.size != n:
            raise RethinkgenError(f"the predictor returned {scores.size} scores for {n} points; expected {n}")
        scores = scores.reshape(n)
        if not np.isfinite(scores).all():
            raise RethinkgenError("the predictor returned non-finite scores (training diverged?); lower the lr")
        values.append(float(np.mean(sigma * _signs(scores))))
    std = float(np.std(values, ddof=1)) if draws > 1 else 0.0
    return RademacherResult(values, float(np.mean(values)), std, n, draws, name=name, config={"seed": seed})


def sample_inputs(dataset: Dataset, n: int, seed: int = 0) -> np.ndarray:
    """A stratified subset of ``n`` training images, preprocessed as for training: float [n, C, H, W].

    Args:
        dataset: the data.
        n: the number of images.
        seed: seeds the draw.
    """
    n = integer("n", n, 1, len(dataset.y_train))
    subset = dataset.subset(n, seed)
    crop = crop_size_for(dataset.image_shape[1], "auto")
    return preprocess(torch.from_numpy(subset.x_train), crop).numpy().astype(np.float64)


def rademacher_suite(dataset: Dataset, names: Iterable[str], n: int = 200, draws: int = 5, epochs: int = DEFAULT_NETWORK_EPOCHS,
                     lr: float | None = None, batch_size: int = 128, seed: int = 0) -> dict[str, RademacherResult]:
    """R_n of several model classes on the same n preprocessed training images and the same sign draws.

    Args:
        dataset: the data the images are drawn from.
        names: fitter or model names (see ``make_fitter``).
        n: the number of images.
        draws: sign vectors drawn.
        epochs: the most epochs of a network's training.
        lr: a network's learning rate (None: the model's default).
        batch_size: a network's minibatch size.
        seed: seeds the images, the signs and the networks.
    """
    names = list(names)
    if not names:
        raise RethinkgenError("names must list at least one fitter or model")
    fitters = {name: make_fitter(name, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed) for name in names}
    X = sample_inputs(dataset, n, seed)
    results = {}
    for name, fit in fitters.items():
        result = rademacher(X, fit, draws=draws, seed=seed)
        result.name = name
        result.config = {"dataset": dataset.name, "n": len(X), "draws": result.draws, "seed": seed,
                         "epochs": epochs, "lr": lr, "batch_size": batch_size}
        results[name] = result
    return results


# ---------------------------------------------------------------------------------------------------
# uniform stability


@dataclass
class StabilityResult:
    """Per-epoch drift between two models trained on sets differing in one example, and the setup."""

    rows: list[dict]
    config: dict

    def to_dict(self) -> dict:
        """The result as JSON-ready data."""
        return {"rows": self.rows, "config": self.config}


def _flat_parameters(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def stability_probe(dataset: Dataset, model: str = "mlp-1x512", n: int = 500, epochs: int = 30,
                    replaced_index: int = 0, seed: int = 0, lr: float | None = None, batch_size: int = 128,
                    replacement: int | str | None = "random", n_test: int | None = None) -> StabilityResult:
    """Train twins on S and S' (S with example ``replaced_index`` swapped) and record how they drift apart.

    Both models start from the same init and see the same data order, so every difference comes from the
    one example. Each row: epoch, mean and max |loss_A - loss_B| over test examples (uniform stability is
    the sup), the fraction of test predictions that differ, the L2 distance of the parameter vectors, and
    the train / test accuracies of both models.

    Args:
        dataset: the data; S is ``dataset.subset(n, seed)``.
        model: a registered model name.
        n: the size of S.
        epochs: epochs of SGD with momentum 0.9 for each twin.
        replaced_index: the position in S of the example that S' replaces.
        seed: seeds S, the replacement drawn, the init, the data order and dropout.
        lr: the learning rate (None: the model's default).
        batch_size: the minibatch size.
        replacement: ``"random"`` (one training example outside S, drawn from ``seed``), an index into the
            full training set, or ``None``: the example is replaced by itself, a no-op twin whose drift must
            be exactly 0 (a check of determinism).
        n_test: test examples the losses are compared on (None: the whole test set).
    """
    if not isinstance(dataset, Dataset):
        raise RethinkgenError(f"dataset must be a rethinkgen Dataset, got {type(dataset).__name__}")
    total = len(dataset.y_train)
    n = integer("n", n, 1, total if replacement is None else total - 1)
    epochs = integer("epochs", epochs, 1)
    replaced_index = integer("replaced_index", replaced_index, 0, n - 1)
    seed = integer("seed", seed, 0)
    batch_size = integer("batch_size", batch_size, 1)
    lr = models.default_lr(model) if lr is None else number("lr", lr, 0, low_open=True)
    if n_test is not None:
        n_test = integer("n_test", n_test, 1, len(dataset.y_test))
    chosen, twin = _twin_indices(dataset, n, replaced_index, seed, replacement)
    original, new = int(chosen[replaced_index]), int(twin[replaced_index])

    sets, x_test, y_test = _twin_tensors(dataset, chosen, twin, seed, n_test)

    model_a = _new_model(model, x_test.shape[1:], dataset.num_classes, seed)
    model_b = copy.deepcopy(model_a)
    twins = [(net, torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)) for net in (model_a, model_b)]

    rows = []
    for epoch in range(epochs):
        order = _order(n, seed, epoch)
        for (net, optimizer), (x, y) in zip(twins, sets):
            # dropout or other train-time randomness draws the same numbers in both twins
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(epoch_seed(seed, epoch, "dropout"))
                _train_epoch(net, optimizer, x, y, order, batch_size)
        rows.append(_drift_row(epoch, [net for net, _ in twins], sets, x_test, y_test))

    config = {"dataset": dataset.name, "model": model, "n": n, "n_test": len(y_test), "epochs": epochs,
              "lr": lr, "momentum": 0.9, "batch_size": batch_size, "seed": seed,
              "replaced_index": replaced_index, "original_example": original, "replacement_example": new,
              "original_label": int(dataset.y_train[original]), "replacement_label": int(dataset.y_train[new]),
              "no_op": new == original, "parameters": models.count_parameters(model_a)}
    return StabilityResult(rows, config)


def _twin_indices(dataset: Dataset, n: int, replaced_index: int, seed: int,
                  replacement: int | str | None) -> tuple[np.ndarray, np.ndarray]:
    """The training indices of S (those ``dataset.subset(n, seed)`` takes) and of S', which differs from S
    at ``replaced_index`` only (see ``stability_probe`` for ``replacement``)."""
    total = len(dataset.y_train)
    chosen = dataset.subset_indices(n, seed)
    if replacement is None:
        new = int(chosen[replaced_index])
    elif isinstance(replacement, str):
        if replacement != "random":
            raise RethinkgenError(f"replacement {replacement!r} must be 'random', a training index or None")
        outside = np.setdiff1d(np.arange(total), chosen)
        new = int(np.random.default_rng([seed, 1]).choice(outside))
    else:
        new = integer("replacement", replacement, 0, total - 1)
    twin = chosen.copy()
    twin[replaced_index] = new
    return chosen, twin


def _twin_tensors(dataset: Dataset, chosen: np.ndarray, twin: np.ndarray, seed: int,
                  n_test: int | None) -> tuple[list, torch.Tensor, torch.Tensor]:
    """The preprocessed training sets S and S' (``chosen`` and ``twin`` indices) as [(x, y), (x, y)], and the
    test images and labels (``n_test`` of them drawn from ``seed``; None: all)."""
    crop = crop_size_for(dataset.image_shape[1], "auto")
    x_all = preprocess(torch.from_numpy(dataset.x_train), crop)
    y_all = torch.from_numpy(dataset.y_train)
    test = dataset if n_test is None else dataset.subset(None, seed, n_test=n_test)
    x_test = preprocess(torch.from_numpy(test.x_test), crop)
    y_test = torch.from_numpy(test.y_test)
    sets = [(x_all[torch.from_numpy(idx)], y_all[torch.from_numpy(idx)]) for idx in (chosen, twin)]
    return sets, x_test, y_test


def _drift_row(epoch: int, nets: list, sets: list, x_test: torch.Tensor, y_test: torch.Tensor) -> dict:
    """One row of ``stability_probe``: how far the two twins ``nets`` (trained on ``sets``) have drifted."""
    test_logits = [predict(net, x_test, EVAL_BATCH, plan=False) for net in nets]
    losses = [F.cross_entropy(logits, y_test, reduction="none") for logits in test_logits]
    predictions = [logits.argmax(1) for logits in test_logits]
    gap = (losses[0] - losses[1]).abs()
    row = {
        "epoch": epoch + 1,
        "loss_difference": gap.mean().item(),
        "max_loss_difference": gap.max().item(),
        "disagreement": (predictions[0] != predictions[1]).double().mean().item(),
        "parameter_distance": (_flat_parameters(nets[0]) - _flat_parameters(nets[1])).norm().item(),
    }
    for label, net, (x, y), pred in zip("ab", nets, sets, predictions):
        train_guesses = predict(net, x, EVAL_BATCH, plan=False).argmax(1)
        row[f"train_accuracy_{label}"] = (train_guesses == y).double().mean().item()
        row[f"test_accuracy_{label}"] = (pred == y_test).double().mean().item()
    return row


# ---------------------------------------------------------------------------------------------------
# figures


def plot_rademacher(results: dict[str, RademacherResult], path, title: str = "") -> Path:
    """Bars of mean +- std of the correlation per model class, against the trivial bound R_n <= 1."""
    if not results:
        raise RethinkgenError("plot_rademacher needs at least one result")
    names = list(results)
    means = [results[k].mean for k in names]
    stds = [results[k].std for k in names]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2.5, 4))
    try:
        ax.bar(range(len(names)), means, yerr=stds, capsize=5, color="tab:blue", alpha=0.8)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1.2, label="trivial bound 1")
        ax.axhline(0.0, color="gray", linewidth=0.8)
        ax.set_xticks(range(len(names)), [f"{k}\n{m:.2f} ± {sd:.2f}" for k, m, sd in zip(names, means, stds)])
        sizes = sorted({results[k].n for k in names})
        ax.set(ylabel="empirical Rademacher complexity", ylim=(min(0.0, *means) - 0.05, 1.22),
               title=title or f"fitting random signs (n = {', '.join(map(str, sizes))})")
        ax.legend(frameon=False, loc="upper right")
        ax.grid(axis="y", alpha=0.3)
        return save(fig, path)
    finally:
        plt.close(fig)


def plot_stability(result: StabilityResult, path, title: str = "") -> Path:
    """Test-loss gap, prediction disagreement and weight distance of the twins against epochs."""
    if not result.rows:
        raise RethinkgenError("plot_stability needs a result with at least one epoch")
    epochs = [row["epoch"] for row in result.rows]
    fig, (loss_ax, disagree_ax, weight_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    try:
        loss_ax.plot(epochs, [row["loss_difference"] for row in result.rows], label="mean over test")
        loss_ax.plot(epochs, [row["max_loss_difference"] for row in result.rows], linestyle="--",
                     label="max over test")
        loss_ax.set(ylabel="|loss(A) - loss(B)|", title="(a) test-loss difference")
        loss_ax.legend(frameon=False)
        disagree_ax.plot(epochs, [row["disagreement"] for row in result.rows])
        disagree_ax.set(ylabel="fraction of test predictions", title="(b) disagreement", ylim=(0, None))
        weight_ax.plot(epochs, [row["parameter_distance"] for row in result.rows])
        weight_ax.set(ylabel="||w_A - w_B||", title="(c) parameter distance")
        for ax in (loss_ax, disagree_ax, weight_ax):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        c = result.config
        fig.suptitle(title or f"one example replaced: {c.get('model', '')} on {c.get('n', '?')} "
                              f"{c.get('dataset', '')} examples")
        return save(fig, path)
    finally:
        plt.close(fig)
