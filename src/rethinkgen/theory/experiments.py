"""Section 5's experiments on real data: Table 3, the norm against label noise, SGD's minimum norm.

Each function returns a report Section (a title, tables and figures) that the CLI prints and stores in
the runs folder, so ``rethinkgen report`` shows it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rethinkgen import data
from rethinkgen.errors import RethinkgenError
from rethinkgen.randomize import randomize
from rethinkgen.report import Section
from rethinkgen.theory.features import make_feature_map
from rethinkgen.theory.kernels import interpolate, one_hot, sgd_from_zero

# Table 3 (App. D): test error of K alpha = y with no regularization
PAPER_TABLE3 = {("mnist", "raw"): "1.2%", ("mnist", "gabor"): "0.6%", ("cifar10", "raw"): "46%",
                ("cifar10", "random-conv"): "17%"}
TABLE3_SIZES = {"tiny": (2000, 1000), "small": (10000, 2000), "paper": (None, None)}


def load_features(dataset: str, n: int | None, n_test: int | None, features: str, label_noise: float = 0.0,
                  seed: int = 0, data_dir: str | None = None):
    """(train features, train labels, test features, test labels, fraction of labels changed)."""
    options = {"data_dir": data_dir} if data.SOURCES[dataset].locate else {}
    source = data.load(dataset, **options)
    if n or n_test:
        source = source.subset(n, seed=seed, n_test=n_test)
    noisy, record = randomize(source, label_noise=label_noise, seed=seed)
    feature_map = make_feature_map(features).fit(noisy.x_train)
    return (feature_map.transform(noisy.x_train), noisy.y_train, feature_map.transform(noisy.x_test),
            noisy.y_test, len(record.changed) / len(noisy.y_train))


def kernel_rows(dataset: str, kernel: str, features: str, noise_levels: list[float], n: int | None,
                n_test: int | None, bandwidth: float | None, l2: float, solver: str, seed: int, data_dir=None,
                max_iter: int = 2000, precondition_rank: int = 500, progress: bool = False):
    rows = []
    for noise in noise_levels:
        X, y, X_test, y_test, changed = load_features(dataset, n, n_test, features, noise, seed, data_dir)
        started = time.perf_counter()
        fit = interpolate(X, one_hot(y, int(max(y.max(), y_test.max())) + 1), kernel=kernel, bandwidth=bandwidth,
                          l2=l2, solver=solver, max_iter=max_iter, precondition_rank=precondition_rank,
                          progress=progress)
        rows.append({"dataset": dataset, "features": features, "kernel": kernel, "label_noise": noise,
                     "labels_changed": changed, "n": len(y), "bandwidth": fit.bandwidth, "solver": fit.solver,
                     "iterations": fit.iterations, "norm": fit.norm, "relative_residual": fit.relative_residual,
                     "train_error": float((fit.predict(X) != y).mean()),
                     "test_error": float((fit.predict(X_test) != y_test).mean()),
                     "seconds": time.perf_counter() - started})
    return rows


KERNEL_HEADERS = ["dataset", "features", "kernel", "label noise", "n", "solver", "norm", "residual", "train error",
                  "test error", "seconds"]


def _row_cells(row: dict) -> list[str]:
    return [row["dataset"], row["features"], row["kernel"], f"{row['label_noise']:g}", f"{row['n']:,}",
            row["solver"] + (f" ({row['iterations']} it)" if row.get("iterations") else ""), f"{row['norm']:.4g}", f"{row['relative_residual']:.1e}", f"{row['train_error']:.2%}",
            f"{row['test_error']:.2%}", f"{row['seconds']:.1f}"]


def norm_against_noise(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (norm_ax, error_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    noise = [r["label_noise"] for r in rows]
    norm_ax.plot(noise, [r["norm"] for r in rows], marker="o")
    error_ax.plot(noise, [r["test_error"] for r in rows], marker="o", label="test error")
    error_ax.plot(noise, [r["train_error"] for r in rows], marker="s", label="train error")
    norm_ax.set(xlabel="label noise", ylabel="RKHS norm of the interpolant", title="minimum-norm solution's norm")
    error_ax.set(xlabel="label noise", ylabel="error", ylim=(0, 1), title="errors of the interpolant")
    for ax in (norm_ax, error_ax):
        ax.grid(alpha=0.3)
    error_ax.legend(frameon=False)
    fig.suptitle(f"{rows[0]['kernel']} kernel on {rows[0]['features']} features of {rows[0]['dataset']} (n = {rows[0]['n']:,})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path


def kernel_section(rows: list[dict], figure: Path | None) -> Section:
    return Section("Section 5: minimum-norm kernel interpolation",
                   "K alpha = Y with one-hot targets; the norm is sqrt(trace(alpha^T K alpha)). The paper states "
                   "only qualitatively that fitting noise needs a much larger norm.",
                   [(KERNEL_HEADERS, [_row_cells(r) for r in rows])], [figure] if figure else [])


def table3(scale: str = "tiny", seed: int = 0, data_dir: str | None = None) -> tuple[Section, list[str]]:
    """Table 3's rows on the data that is present: MNIST (or Fashion-MNIST, else digits) and CIFAR-10."""
    if scale not in TABLE3_SIZES:
        raise RethinkgenError(f"unknown scale {scale!r}; allowed: {', '.join(TABLE3_SIZES)}")
    n, n_test = TABLE3_SIZES[scale]
    found = {name for name in ("mnist", "fashion-mnist", "cifar10") if data.SOURCES[name].locate(data_dir=data_dir)}
    digits_like = next((name for name in ("mnist", "fashion-mnist") if name in found), "digits")
    plan = [(digits_like, "raw"), (digits_like, "gabor")]
    notes = []
    if "cifar10" in found:
        plan += [("cifar10", "raw"), ("cifar10", "random-conv")]
    else:
        notes.append("CIFAR-10 not found: its rows are skipped (see `rethinkgen datasets`).")
    if digits_like != "mnist":
        notes.append(f"MNIST not found: its rows run on {digits_like} instead, so the paper's numbers do not apply.")
    rows = []
    for dataset, features in plan:
        size = (None, None) if dataset == "digits" else (n, n_test)
        row = kernel_rows(dataset, "rbf", features, [0.0], *size, None, 0.0, "auto", seed, data_dir)[0]
        rows.append(_row_cells(row) + [PAPER_TABLE3.get((dataset, features), "-")])
    section = Section(f"Table 3: kernel interpolation with no regularization ({scale} scale)",
                      "Gaussian (RBF) kernel with the median-distance bandwidth. " + " ".join(notes),
                      [(KERNEL_HEADERS + ["paper: test error"], rows)])
    return section, notes


def min_norm_section(path: Path, n: int = 40, d: int = 200, epochs: int = 200, seed: int = 0) -> Section:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    _, history = sgd_from_zero(X, y, epochs=epochs, seed=seed)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    epochs_axis = [h["epoch"] for h in history]
    ax.semilogy(epochs_axis, [h["distance_to_min_norm"] for h in history], label="|w - pinv(X) y|")
    ax.semilogy(epochs_axis, [h["loss"] for h in history], label="training loss")
    ax.set(xlabel="epoch", title=f"SGD from w = 0 on a linear model, n = {n} < d = {d}")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    last = history[-1]
    return Section("Section 5: SGD converges to the minimum-norm solution",
                   "SGD on the squared loss, one example at a time, from zero: every update is a multiple of a data "
                   "point, so the iterate stays in the data's span and converges to the pseudo-inverse solution.",
                   [(["n", "d", "epochs", "training loss", "distance to pinv(X) y", "|w|", "|pinv(X) y|"],
                     [[str(n), str(d), str(epochs), f"{last['loss']:.1e}", f"{last['distance_to_min_norm']:.1e}",
                       f"{last['norm']:.6f}", f"{last['min_norm']:.6f}"]])], [path])
