"""Section 5's experiments on real data: Table 3, the norm against label noise, SGD's minimum norm.

Each function returns a report Section (a title, tables and figures) that the CLI prints and stores in
the runs folder, so ``rethinkgen report`` shows it.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from rethinkgen import data
from rethinkgen.data.randomize import randomize
from rethinkgen.errors import RethinkgenError
from rethinkgen.report import Section
from rethinkgen.report.figures import save
from rethinkgen.theory.features import make_feature_map
from rethinkgen.theory.kernels import interpolate, one_hot, sgd_from_zero

# Table 3 (App. D): test error of K alpha = y with no regularization
PAPER_TABLE3 = {("mnist", "raw"): "1.2%", ("mnist", "gabor"): "0.6%", ("cifar10", "raw"): "46%",
                ("cifar10", "random-conv"): "17%"}
# the first author's public recipe: pixels / 255, exp(-0.02 |x - x'|^2), all 60,000 MNIST images, one-hot targets
RECIPE_TABLE3 = {("mnist", "raw"): "1.22%"}
TABLE3_FEATURES = {"mnist": ("raw", "gabor"), "fashion-mnist": ("raw", "gabor"), "cifar10": ("raw", "random-conv"),
                   "digits": ("raw", "gabor")}
TABLE3_SIZES = {"tiny": (2000, 1000), "small": (10000, 2000), "paper": (None, None)}
TABLE3_LABELS = {"true": 0.0, "random": 1.0}


def load_features(dataset: str, n: int | None, n_test: int | None, features: str, label_noise: float = 0.0,
                  seed: int = 0, data_dir: str | None = None):
    """(train features, train labels, test features, test labels, fraction of labels changed)."""
    options = {"data_dir": data_dir} if data.SOURCES[dataset].locate else {}
    source = data.load(dataset, **options)
    if n is not None or n_test is not None:
        source = source.subset(n, seed=seed, n_test=n_test)
    noisy, record = randomize(source, label_noise=label_noise, seed=seed)
    feature_map = make_feature_map(features).fit(noisy.x_train)
    return (feature_map.transform(noisy.x_train), noisy.y_train, feature_map.transform(noisy.x_test),
            noisy.y_test, len(record.changed) / len(noisy.y_train))


def peak_memory_bytes(reset: bool = False) -> int:
    """The process's peak resident memory (VmHWM; Linux). ``reset`` restarts the count from now, so a
    later call gives the peak of what ran in between; where that is not possible it is the process's
    peak so far (ru_maxrss)."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def kernel_rows(dataset: str, kernel: str, features: str, noise_levels: list[float], n: int | None,
                n_test: int | None, bandwidth: float | str | None, l2: float, solver: str, seed: int, data_dir=None,
                max_iter: int = 2000, precondition_rank: int = 500, progress: bool = False, tol: float = 1e-6,
                budget_bytes: int | None = None, device: str = "cpu", factorization: str = "auto"):
    """One row per label-noise level: the fit's solver, norm, residual, errors, seconds and peak memory."""
    rows = []
    for noise in noise_levels:
        X, y, X_test, y_test, changed = load_features(dataset, n, n_test, features, noise, seed, data_dir)
        peak_memory_bytes(reset=True)
        started = time.perf_counter()
        fit = interpolate(X, one_hot(y, int(max(y.max(), y_test.max())) + 1), kernel=kernel, bandwidth=bandwidth,
                          l2=l2, solver=solver, max_iter=max_iter, precondition_rank=precondition_rank,
                          progress=progress, tol=tol, budget_bytes=budget_bytes, device=device,
                          factorization=factorization, seed=seed)
        solve_seconds = time.perf_counter() - started
        rows.append({"dataset": dataset, "features": features, "kernel": kernel, "label_noise": noise,
                     "labels_changed": changed, "n": len(y), "bandwidth": fit.bandwidth, "solver": fit.solver,
                     "precision": fit.precision, "device": fit.device, "iterations": fit.iterations,
                     "norm": fit.norm, "relative_residual": fit.relative_residual, "tol": tol,
                     "converged": fit.converged, "train_error": float((fit.fitted.argmax(1).cpu().numpy() != y).mean()),
                     "test_error": float((fit.predict(X_test) != y_test).mean()), "solve_seconds": solve_seconds,
                     "phases": fit.phases, "seconds": time.perf_counter() - started,
                     "peak_memory_bytes": peak_memory_bytes(), "estimated_peak_bytes": fit.estimated_peak_bytes})
    return rows


KERNEL_HEADERS = ["dataset", "features", "kernel", "label noise", "n", "solver", "norm", "residual", "train error",
                  "test error", "seconds", "peak memory"]


def _row_cells(row: dict) -> list[str]:
    solver = row["solver"] + (f" ({row['iterations']} it)" if row.get("iterations") else "")
    residual = f"{row['relative_residual']:.1e}" + ("" if row.get("converged", True) else " (not converged)")
    return [row["dataset"], row["features"], row["kernel"], f"{row['label_noise']:g}", f"{row['n']:,}", solver,
            f"{row['norm']:.4g}", residual, f"{row['train_error']:.2%}", f"{row['test_error']:.2%}",
            f"{row['seconds']:.1f}", f"{row['peak_memory_bytes'] / 2 ** 30:.1f} GiB"]


def norm_against_noise(rows: list[dict], path: Path) -> Path:
    """A figure of the interpolant's RKHS norm and its errors against label noise; returns ``path``.

    Args:
        rows: one per noise level, with ``label_noise``, ``norm``, ``train_error`` and ``test_error``.
        path: the PNG to write (an SVG goes beside it).
    """
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
    return save(fig, path, f"{rows[0]['kernel']} kernel on {rows[0]['features']} features of {rows[0]['dataset']} "
                           f"(n = {rows[0]['n']:,})")


def kernel_section(rows: list[dict], figure: Path | None) -> Section:
    """The report section of the kernel interpolation rows.

    Args:
        rows: one per solve, as ``kernel_rows`` returns them.
        figure: the figure of the norm against label noise (None: none).
    """
    return Section("Section 5: minimum-norm kernel interpolation",
                   "K alpha = Y with one-hot targets; the norm is sqrt(trace(alpha^T K alpha)). The paper states "
                   "only qualitatively that fitting noise needs a much larger norm.",
                   [(KERNEL_HEADERS, [_row_cells(r) for r in rows])], [figure] if figure else [])


def table3(scale: str = "tiny", seed: int = 0, data_dir: str | None = None, labels=("true",),
           progress: bool = False, **solve) -> tuple[Section, list[str], list[dict]]:
    """Table 3's rows on the data that is present: MNIST (raw, Gabor), Fashion-MNIST (raw, Gabor) and
    CIFAR-10 (raw, random conv), or scikit-learn's digits when none is. ``labels``: true and/or random.
    The raw-pixel rows use the MNIST recipe's kernel exp(-0.02 |x - x'|^2); the others half the median
    distance (about the same ratio to the data's scale). ``solve``: tol, budget_bytes, device,
    factorization, max_iter passed on to ``interpolate``. Returns the section, its notes and the rows."""
    if scale not in TABLE3_SIZES:
        raise RethinkgenError(f"unknown scale {scale!r}; allowed: {', '.join(TABLE3_SIZES)}")
    for label in labels:
        if label not in TABLE3_LABELS:
            raise RethinkgenError(f"unknown labels {label!r}; allowed: {', '.join(TABLE3_LABELS)}")
    n, n_test = TABLE3_SIZES[scale]
    found = [name for name in ("mnist", "fashion-mnist", "cifar10") if data.SOURCES[name].locate(data_dir=data_dir)]
    notes = []
    if "mnist" not in found:
        notes.append("MNIST not found: the paper's MNIST rows (1.2% raw, 0.6% Gabor) are not run.")
    if "cifar10" not in found:
        notes.append("CIFAR-10 not found: its rows are skipped (see `rethinkgen list datasets`).")
    if not found:
        notes.append("No image dataset found: the rows run on scikit-learn's digits.")
    rows, cells = [], []
    for dataset in found or ["digits"]:
        for features in TABLE3_FEATURES[dataset]:
            for label in labels:
                size = (None, None) if dataset == "digits" else (n, n_test)
                bandwidth = "recipe" if features == "raw" and dataset != "cifar10" else "half-median"
                row = kernel_rows(dataset, "rbf", features, [TABLE3_LABELS[label]], *size, bandwidth, 0.0, "auto",
                                  seed, data_dir, progress=progress, **solve)[0]
                rows.append(row)
                paper = PAPER_TABLE3.get((dataset, features), "-") if label == "true" else "-"
                recipe = RECIPE_TABLE3.get((dataset, features), "-") if label == "true" else "-"
                cells.append(_row_cells(row) + [paper, recipe])
    section = Section(f"Table 3: kernel interpolation with no regularization ({scale} scale)",
                      "Gaussian kernel, K alpha = Y solved to a relative residual of at most the tolerance (label "
                      "noise 1 = random labels). Raw pixels (in [0, 1]) use exp(-0.02 |x - x'|^2), the MNIST "
                      "recipe's kernel; Gabor and random-conv features use the bandwidth half the median distance. "
                      + " ".join(notes),
                      [(KERNEL_HEADERS + ["paper: test error", "MNIST recipe: test error"], cells)])
    return section, notes, rows


def min_norm_section(path: Path, n: int = 40, d: int = 200, epochs: int = 200, seed: int = 0) -> Section:
    """SGD from zero on an underdetermined linear least-squares problem, shown converging to the
    minimum-norm (pseudo-inverse) solution: a figure at ``path`` and its report section.

    Args:
        path: the PNG to write (an SVG goes beside it).
        n: the number of random points.
        d: their dimension (d > n: infinitely many solutions).
        epochs: passes of SGD over the points.
        seed: seeds the points, the targets and SGD's order.
    """
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
    save(fig, path)
    last = history[-1]
    return Section("Section 5: SGD converges to the minimum-norm solution",
                   "SGD on the squared loss, one example at a time, from zero: every update is a multiple of a data "
                   "point, so the iterate stays in the data's span and converges to the pseudo-inverse solution.",
                   [(["n", "d", "epochs", "training loss", "distance to pinv(X) y", "|w|", "|pinv(X) y|"],
                     [[str(n), str(d), str(epochs), f"{last['loss']:.1e}", f"{last['distance_to_min_norm']:.1e}",
                       f"{last['norm']:.6f}", f"{last['min_norm']:.6f}"]])], [path])
