"""Figures drawn from stored runs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LINESTYLES = ["-", "--", "-.", ":"]
# the texts of the figures (labels, model and sweep names) come from settings files: a "$" is a dollar
# sign, never the start of matplotlib's mathtext (a bad formula would stop the figure)
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def step_unit(max_step: int) -> tuple[float, str]:
    """Thousands of steps, as the paper's axes, unless the runs are too short for that to read well."""
    return (1000.0, "thousand steps") if max_step >= 2000 else (1.0, "steps")


def save(fig, path: str | Path, title: str = "", tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (PNG, 120 dpi) and beside it as SVG, close it, and return ``path``.

    Args:
        fig: the matplotlib figure.
        path: the PNG's path; its folder is made if missing.
        title: the figure's title (none when empty).
        tight: lay the panels out tightly (False for a figure made with ``layout="constrained"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
        fig.suptitle(title)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path


def plot_learning_curves(curves: list[dict], path: str | Path, title: str = "") -> Path:
    """Figure-1a-style panels against steps: running mean training loss, train and test accuracy.

    Each curve is ``{"label", "steps": [{"step", "loss"}...], "metrics": [{"step", "train_accuracy",
    "test_accuracy"}...]}``. Writes ``path`` (PNG) and the same figure as SVG beside it.
    """
    with plt.rc_context(PLAIN_TEXT):
        return _plot_learning_curves(curves, Path(path), title)


def _plot_learning_curves(curves: list[dict], path: Path, title: str) -> Path:
    fig, (loss_ax, train_ax, test_ax) = plt.subplots(1, 3, figsize=(16, 4.6))
    unit, unit_label = step_unit(max((row["step"] for c in curves for row in c["metrics"]), default=0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, curve in enumerate(curves):
        # curves can coincide (an MLP does not care about a fixed pixel permutation): vary the dashes too
        style = dict(color=colors[i % len(colors)], linestyle=LINESTYLES[i % len(LINESTYLES)], linewidth=1.6)
        steps = curve["steps"]
        loss_ax.plot([row["step"] / unit for row in steps], [row["loss"] for row in steps],
                     label=curve["label"], **style)
        metrics = curve["metrics"]
        x = [row["step"] / unit for row in metrics]
        train_ax.plot(x, [row["train_accuracy"] for row in metrics], **style)
        test_ax.plot(x, [row["test_accuracy"] for row in metrics], **style)
    loss_ax.set(ylabel="average training loss", title="(a) learning curves", ylim=(0, None))
    train_ax.set(ylabel="accuracy on the training labels", title="(b) training accuracy", ylim=(0, 1.02))
    test_ax.set(ylabel="accuracy on the true test labels", title="(c) test accuracy", ylim=(0, 1.02))
    loss_ax.legend(frameon=False)
    for ax in (loss_ax, train_ax, test_ax):
        ax.set_xlabel(unit_label)
        ax.grid(alpha=0.3)
    return save(fig, path, title)


MEMORIZATION_PANELS = (
    ("unchanged_accuracy", "(a) examples whose label was kept", "accuracy on their (true) labels"),
    ("changed_accuracy", "(b) examples whose label was changed", "accuracy on their new labels"),
    ("changed_original_accuracy", "(c) the changed examples", "accuracy on their original labels"),
)


def plot_memorization(curves: list[dict], path: str | Path, title: str = "") -> Path:
    """Memorization dynamics against steps (Arpit et al. 2017): the training accuracy on the examples
    whose label was kept, on the changed examples against their new labels, and on the changed examples
    against their original labels. With label noise the first rises early, the second late.

    Args:
        curves: one per run, ``{"label", "metrics": [history rows with "step" and the three keys]}``;
            rows without the keys (runs with no changed label, or recorded before they existed) are left out.
        path: the PNG to write; the same figure is written as SVG beside it.
        title: the figure's title (none when empty).
    """
    with plt.rc_context(PLAIN_TEXT):
        path = Path(path)
        fig, axes = plt.subplots(1, len(MEMORIZATION_PANELS), figsize=(16, 4.6))
        rows = [row for c in curves for row in c["metrics"]]
        unit, unit_label = step_unit(max((row["step"] for row in rows), default=0))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, curve in enumerate(curves):
            style = dict(color=colors[i % len(colors)], linestyle=LINESTYLES[i % len(LINESTYLES)], linewidth=1.6)
            for ax, (key, _, _) in zip(axes, MEMORIZATION_PANELS):
                points = [(row["step"] / unit, row[key]) for row in curve["metrics"] if row.get(key) is not None]
                ax.plot([x for x, _ in points], [y for _, y in points], label=curve["label"], **style)
        for ax, (_, panel_title, ylabel) in zip(axes, MEMORIZATION_PANELS):
            ax.set(xlabel=unit_label, ylabel=ylabel, title=panel_title, ylim=(0, 1.02))
            ax.grid(alpha=0.3)
        axes[0].legend(frameon=False)
        return save(fig, path, title)
