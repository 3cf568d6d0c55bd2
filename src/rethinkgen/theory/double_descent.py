"""Double descent with random features and minimum-norm least squares (Belkin, Hsu, Ma & Mandal 2019).

Belkin et al., "Reconciling modern machine-learning practice and the classical bias-variance trade-off"
(PNAS 116(32), 2019), fit a linear model on N random features of n training points by least squares,
taking the minimum-norm solution once there are more features than points (N > n). The test error first
follows the classical U, rises to a peak where the model can just interpolate (N = n, the interpolation
threshold) and falls again beyond it, while the norm of the solution, largest at the threshold, falls.
This is Section 5's minimum-norm argument seen as a function of the model's size.

``double_descent`` runs that experiment on a stratified subset of a dataset:

* ``relu`` features: sqrt(2 / N) relu(W x) with W ~ N(0, I), on pixels centred by the training images'
  mean and scaled to unit root-mean-square norm. (On uncentred images, which lie in a narrow cone, a good
  share of the random units are zero on every training image and the threshold moves above N = n.)
* ``fourier`` features: sqrt(2 / N) cos(W x / s + b) with W ~ N(0, I), b ~ U[0, 2 pi), on pixels in [0, 1]:
  random Fourier features of the Gaussian kernel of bandwidth s (Rahimi & Recht 2007), the features of
  Belkin et al.'s MNIST figure (they use s = 5 on MNIST, the ``recipe`` bandwidth).

The features of width N are the first N of the widest draw, so a seed's widths are nested. Targets are
one-hot; the fit is float64 least squares (LAPACK's SVD-based gelsd, whose answer is the pseudo-inverse
solution pinv(Phi) Y) or, with ``ridge`` > 0, the ridge solution of |Phi a - Y|^2 + ridge |a|^2.
Each seed draws its own training subset, changed labels and feature weights.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg

from rethinkgen import data
from rethinkgen.checks import integer, is_integer, number
from rethinkgen.data.randomize import randomize
from rethinkgen.errors import RethinkgenError, choice_error, shown
from rethinkgen.report.figures import plt, save
from rethinkgen.store import atomic_write_text, safe_name
from rethinkgen.theory.features import raw_features
from rethinkgen.theory.kernels import choose_bandwidth, one_hot

FEATURES = ("relu", "fourier")
METRICS = ("train_error", "test_error", "train_loss", "test_loss", "norm", "residual")
DEFAULT_POINTS = 25           # widths in the default grid, n in the middle
DEFAULT_SPAN = 20             # the default grid runs from n / 20 to 20 n
MAX_WIDTH_RATIO = 1000        # widths above 1000 n are refused (the features alone would need n * N * 8 bytes)
INTERPOLATION_TOL = 1e-6      # relative residual |Phi a - Y| / |Y| below which a fit counts as interpolating
CHUNK_ELEMENTS = 1 << 22      # feature-matrix entries computed at a time when predicting (32 MB in float64)
STREAM_WEIGHTS = 11           # random stream of the feature weights (seed, stream), apart from the data's


# ------------------------------------------------------------------------------------------- features
def default_widths(n: int, points: int = DEFAULT_POINTS, span: float = DEFAULT_SPAN) -> list[int]:
    """A log-spaced grid of ``points`` widths from n / span to span * n that contains n exactly."""
    ratios = np.geomspace(1 / span, span, points if points % 2 else points + 1)
    return sorted({max(1, round(float(n * r))) for r in ratios} | {n})


def feature_inputs(train_images: np.ndarray, test_images: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The vectors the random features act on, float64 ``[N, C*H*W]``, for the training and test images:
    pixels in [0, 1] for ``fourier``; for ``relu``, pixels minus the training images' mean, divided by the
    training vectors' root-mean-square norm (centred data: no feature is zero on every training image)."""
    x, x_test = raw_features(train_images).astype(np.float64), raw_features(test_images).astype(np.float64)
    if kind == "fourier":
        return x, x_test
    mean = x.mean(axis=0)
    scale = max(float(np.sqrt(np.square(x - mean).sum(1).mean())), 1e-12)
    return (x - mean) / scale, (x_test - mean) / scale


@dataclass
class RandomFeatures:
    """``max_width`` random features of ``dim``-dimensional inputs; ``transform(X, width)`` gives the first
    ``width`` of them. ``kind``: relu or fourier; ``bandwidth``: the Gaussian kernel's s (fourier only)."""

    kind: str
    dim: int
    max_width: int
    seed: int = 0
    bandwidth: float = 1.0
    weights: np.ndarray = field(init=False, repr=False)
    offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        rng = np.random.default_rng([self.seed, STREAM_WEIGHTS])
        self.weights = rng.standard_normal((self.max_width, self.dim))
        self.offsets = rng.uniform(0, 2 * math.pi, self.max_width)

    def transform(self, X: np.ndarray, width: int) -> np.ndarray:
        """Features ``[len(X), width]`` in float64."""
        z = X @ self.weights[:width].T
        if self.kind == "relu":
            return np.sqrt(2.0 / width) * np.maximum(z, 0.0)
        return np.sqrt(2.0 / width) * np.cos(z / self.bandwidth + self.offsets[:width])


def least_squares(Phi: np.ndarray, Y: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """The minimum-norm least-squares coefficients pinv(Phi) Y (``ridge`` 0), or the ridge solution
    argmin |Phi a - Y|^2 + ridge |a|^2, solved in whichever of the n x n or N x N systems is smaller."""
    if ridge == 0:
        return scipy.linalg.lstsq(Phi, Y, lapack_driver="gelsd")[0]
    n, width = Phi.shape
    if width >= n:
        return Phi.T @ scipy.linalg.solve(Phi @ Phi.T + ridge * np.eye(n), Y, assume_a="pos")
    return scipy.linalg.solve(Phi.T @ Phi + ridge * np.eye(width), Phi.T @ Y, assume_a="pos")


def predict(features: RandomFeatures, X: np.ndarray, width: int, coef: np.ndarray) -> np.ndarray:
    """Phi(X) coef, with the features computed a block of rows at a time."""
    rows = max(1, CHUNK_ELEMENTS // width)
    return np.concatenate([features.transform(X[i:i + rows], width) @ coef for i in range(0, len(X), rows)])


def _scores(predicted: np.ndarray, labels: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(zero-one error, squared loss: the mean over examples of |f(x) - one-hot y|^2)."""
    error = float((predicted.argmax(1) != labels).mean())
    return error, float(np.square(predicted - targets).sum(1).mean())


# ---------------------------------------------------------------------------------------------- runs
def _seed_rows(source, n, n_test, widths, kind, label_noise, ridge, seed, bandwidth) -> tuple[list[dict], dict]:
    """One row per width for one seed, and what the seed drew (labels changed, bandwidth)."""
    subset = source.subset(n, seed=seed, n_test=n_test)
    noisy, record = randomize(subset, label_noise=label_noise, seed=seed)
    X, X_test = feature_inputs(noisy.x_train, noisy.x_test, kind)
    k = source.num_classes
    Y, Y_test = one_hot(noisy.y_train, k), one_hot(noisy.y_test, k)
    s = choose_bandwidth(X, bandwidth) if kind == "fourier" else None
    features = RandomFeatures(kind, X.shape[1], max(widths), seed, s or 1.0)
    rows = []
    for width in widths:
        Phi = features.transform(X, width)
        coef = least_squares(Phi, Y, ridge)
        fitted = Phi @ coef
        train_error, train_loss = _scores(fitted, noisy.y_train, Y)
        test_error, test_loss = _scores(predict(features, X_test, width, coef), noisy.y_test, Y_test)
        residual = float(np.linalg.norm(fitted - Y) / np.linalg.norm(Y))
        rows.append({"seed": seed, "width": width, "train_error": train_error, "test_error": test_error,
                     "train_loss": train_loss, "test_loss": test_loss, "norm": float(np.linalg.norm(coef)),
                     "residual": residual})
    return rows, {"seed": seed, "labels_changed": len(record.changed) / n, "bandwidth": s,
                  "n_test": len(noisy.y_test)}


def _aggregate(per_seed: list[dict], widths: list[int], n: int) -> list[dict]:
    """Mean and standard deviation over seeds of every metric, per width."""
    rows = []
    for width in widths:
        runs = [r for r in per_seed if r["width"] == width]
        row = {"width": width, "ratio": width / n}
        for metric in METRICS:
            values = np.array([r[metric] for r in runs])
            row[f"{metric}_mean"], row[f"{metric}_std"] = float(values.mean()), float(values.std())
        row["interpolates"] = all(r["residual"] < INTERPOLATION_TOL for r in runs)
        rows.append(row)
    return rows


def _check(dataset, n, n_test, widths, features, label_noise, ridge, seeds) -> tuple[list[int], list[int]]:
    """Every argument checked (one RethinkgenError naming the value and what is allowed); the widths and
    seeds as lists of ints."""
    if dataset not in data.SOURCES:
        raise choice_error("dataset", dataset, data.SOURCES)
    if features not in FEATURES:
        raise choice_error("random features", features, FEATURES)
    n = integer("training size n", n, 2)
    if n_test is not None:
        integer("test size n_test", n_test, 1)
    widths = default_widths(n) if widths is None else widths
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise RethinkgenError(f"widths {shown(widths)} must be a list of integers in 1..{MAX_WIDTH_RATIO * n}")
    widths = list(widths)
    if not widths or not all(is_integer(w) and 1 <= w <= MAX_WIDTH_RATIO * n for w in widths):
        raise RethinkgenError(f"widths {shown(widths)} must be a non-empty list of integers in "
                              f"1..{MAX_WIDTH_RATIO * n} (up to {MAX_WIDTH_RATIO} n)")
    number("label noise", label_noise, 0, 1)
    number("ridge", ridge, 0)
    seeds = [seeds] if is_integer(seeds) else seeds
    seeds = list(seeds) if hasattr(seeds, "__iter__") and not isinstance(seeds, (str, bytes, dict)) else seeds
    if not isinstance(seeds, list) or not seeds or not all(is_integer(s) and s >= 0 for s in seeds):
        raise RethinkgenError(f"seeds {shown(seeds)} must be a non-empty list of integers >= 0")
    return sorted({int(w) for w in widths}), [int(s) for s in seeds]


# -------------------------------------------------------------------------------------------- result
@dataclass
class DoubleDescent:
    """What ``double_descent`` measured. ``rows``: one per width with ``width``, ``ratio`` (N / n), the mean
    and standard deviation over seeds of each metric (``test_error_mean``, ``test_error_std``, ...) and
    ``interpolates`` (every seed's relative training residual below INTERPOLATION_TOL). ``per_seed``: the
    same metrics for each seed and width; ``draws``: per seed, the fraction of training labels changed,
    the Fourier bandwidth and the test-set size."""

    dataset: str
    n: int
    n_test: int | None
    features: str
    label_noise: float
    ridge: float
    seeds: list[int]
    widths: list[int]
    rows: list[dict]
    per_seed: list[dict]
    draws: list[dict]
    seconds: float = 0.0

    def row(self, width: int) -> dict:
        """The aggregated row of one width."""
        for row in self.rows:
            if row["width"] == width:
                return row
        raise RethinkgenError(f"width {shown(width)} was not measured; measured: {', '.join(map(str, self.widths))}")

    def peak_width(self, metric: str = "test_error") -> int:
        """The width N with the largest mean of ``metric`` (one of METRICS) over all measured widths."""
        if metric not in METRICS:
            raise choice_error("metric", metric, METRICS)
        return max(self.rows, key=lambda r: r[f"{metric}_mean"])["width"]

    def table(self) -> tuple[list[str], list[list[str]]]:
        """(headers, rows of strings): one row per width, mean +- standard deviation over seeds."""
        headers = ["N", "N / n", "train error", "test error", "train loss", "test loss", "norm", "interpolates"]
        pm = lambda r, m, f: f"{r[m + '_mean']:{f}} ± {r[m + '_std']:{f}}"
        cells = [[str(r["width"]), f"{r['ratio']:.3g}", pm(r, "train_error", ".1%"), pm(r, "test_error", ".1%"),
                  pm(r, "train_loss", ".3g"), pm(r, "test_loss", ".3g"), pm(r, "norm", ".3g"),
                  "yes" if r["interpolates"] else "no"] for r in self.rows]
        return headers, cells

    def summary(self) -> str:
        """One paragraph: the peak of the test error and loss, and the ends of the width range."""
        peak = self.row(self.peak_width("test_error"))
        loss_peak = self.row(self.peak_width("test_loss"))
        first, last = self.rows[0], self.rows[-1]
        changed = np.mean([d["labels_changed"] for d in self.draws])
        return (f"{self.features} random features on {self.dataset}, n = {self.n}, label noise {self.label_noise:g} "
                f"({changed:.1%} of labels changed), ridge {self.ridge:g}, {len(self.seeds)} seed(s): test error "
                f"peaks at {peak['test_error_mean']:.1%} at N = {peak['width']} (N/n = {peak['ratio']:.3g}); "
                f"test loss peaks at {loss_peak['test_loss_mean']:.3g} at N = {loss_peak['width']} "
                f"(N/n = {loss_peak['ratio']:.3g}); at N = {first['width']} the test error is "
                f"{first['test_error_mean']:.1%}, at N = {last['width']} {last['test_error_mean']:.1%} "
                f"(norm {last['norm_mean']:.3g}, {peak['norm_mean']:.3g} at the error's peak).")

    def to_dict(self) -> dict:
        """The result as JSON-ready data."""
        return asdict(self)


def double_descent(dataset: str = "digits", n: int = 200, n_test: int | None = None,
                   widths: list[int] | None = None, features: str = "relu", label_noise: float = 0.0,
                   ridge: float = 0.0, seeds: tuple[int, ...] | list[int] = (0, 1, 2),
                   bandwidth: float | str | None = "half-median", data_dir: str | None = None) -> DoubleDescent:
    """Test and training error of least squares on N random features, for each width N.

    Args:
        dataset: a dataset name of ``rethinkgen.data.SOURCES`` (``digits`` needs no files).
        n: training points, a stratified subset drawn per seed.
        n_test: test points, a stratified subset of the test split (None: all of it).
        widths: the feature counts N (default: ``default_widths(n)``, n / 20 to 20 n with n itself).
        features: ``relu`` or ``fourier`` (see the module's description).
        label_noise: the fraction of training labels replaced by uniform random ones (the project's
            randomization, ``rethinkgen.data.randomize.randomize``); test labels stay true.
        ridge: 0 for the minimum-norm least-squares fit, > 0 for the ridge solution.
        seeds: one run per seed; a seed draws the subset, the changed labels and the feature weights.
        bandwidth: the Gaussian kernel's bandwidth for ``fourier`` features (a number, or ``half-median``,
            ``median``, ``recipe`` as in ``rethinkgen.theory.kernels.choose_bandwidth``); relu ignores it.
        data_dir: where to look for dataset files.
    """
    widths, seeds = _check(dataset, n, n_test, widths, features, label_noise, ridge, seeds)
    started = time.perf_counter()
    source = data.load(dataset, **({"data_dir": data_dir} if data.SOURCES[dataset].locate else {}))
    per_seed, draws = [], []
    for seed in seeds:
        rows, drawn = _seed_rows(source, n, n_test, widths, features, float(label_noise), float(ridge), seed,
                                 bandwidth)
        per_seed += rows
        draws.append(drawn)
    return DoubleDescent(dataset, n, n_test, features, float(label_noise), float(ridge), seeds, widths,
                         _aggregate(per_seed, widths, n), per_seed, draws, time.perf_counter() - started)


# ------------------------------------------------------------------------------------- figure, storage
def plot_double_descent(result: DoubleDescent, path: str | Path) -> Path:
    """Zero-one error (band: +- one standard deviation over seeds), test squared loss and norm against
    N / n (log scale), means over seeds, the threshold N = n dashed. Writes ``path`` (PNG) and its SVG twin."""
    path = Path(path)
    ratio = np.array([r["ratio"] for r in result.rows])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = [(axes[0], ("test_error", "train_error"), "zero-one error"),
              (axes[1], ("test_loss",), "test squared loss"), (axes[2], ("norm",), "norm of the solution")]
    for ax, metrics, label in panels:
        for metric in metrics:
            mean = np.array([r[f"{metric}_mean"] for r in result.rows])
            ax.plot(ratio, mean, marker="o", markersize=3, label=metric.replace("_", " "))
            if ax is axes[0]:  # the other two are on a log scale, where mean - std may be negative
                std = np.array([r[f"{metric}_std"] for r in result.rows])
                ax.fill_between(ratio, mean - std, mean + std, alpha=0.2)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="N = n")
        ax.set(xscale="log", yscale="linear" if ax is axes[0] else "log", xlabel="features / training points (N / n)",
               ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    return save(fig, path, f"{result.features} random features, minimum-norm least squares"
                f"{f' (ridge {result.ridge:g})' if result.ridge else ''}: {result.dataset}, n = {result.n}, "
                f"label noise {result.label_noise:g}, {len(result.seeds)} seed(s)")


def default_name(result: DoubleDescent) -> str:
    """double-descent-DATASET-FEATURES-nN-noiseP (and -ridgeR when ridge > 0)."""
    name = f"double-descent-{result.dataset}-{result.features}-n{result.n}-noise{result.label_noise:g}"
    return name + (f"-ridge{result.ridge:g}" if result.ridge else "")


def save_double_descent(result: DoubleDescent, runs_dir: str | Path, name: str | None = None) -> dict[str, Path]:
    """Store ``result`` in ``runs_dir/theory/``: NAME.json (a report section, with the full result under
    ``result``), NAME.csv (one row per width) and the figure NAME.png / NAME.svg. ``name`` (default
    ``default_name(result)``) must be a safe file name. Returns the paths by kind."""
    name = safe_name(default_name(result) if name is None else name, "result name")
    folder = Path(runs_dir) / "theory"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RethinkgenError(f"runs folder {runs_dir} cannot be written: {error}") from None
    figure = plot_double_descent(result, folder / f"{name}.png")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(result.rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    atomic_write_text(folder / f"{name}.csv", text.getvalue())
    section = {"title": f"Double descent: {result.features} random features on {result.dataset} (n = {result.n}, "
                        f"label noise {result.label_noise:g})",
               "text": "Least squares on N random features (minimum norm beyond N = n; Belkin, Hsu, Ma & Mandal "
                       "2019); mean ± std over seeds. " + result.summary(),
               "tables": [list(result.table())], "figures": [figure.name], "result": result.to_dict()}
    atomic_write_text(folder / f"{name}.json", json.dumps(section, indent=2) + "\n")
    return {"json": folder / f"{name}.json", "csv": folder / f"{name}.csv", "png": figure,
            "svg": figure.with_suffix(".svg")}
