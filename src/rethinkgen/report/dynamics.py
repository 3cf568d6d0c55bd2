"""Report sections of the experiments that followed the paper: memorization dynamics (Arpit et al. 2017)
and model-wise and epoch-wise double descent (Nakkiran et al. 2019). Both read each run's per-epoch
history (``metrics.jsonl``)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from rethinkgen.report import COLORS, Run, Section, by_label, by_model, mean_sd, save, status_of
from rethinkgen.report.figures import plot_memorization

KEPT_FIT = 0.9          # the kept labels count as learned from this accuracy on them
CHANGED_FIT = 0.5       # the changed labels count as memorized from this accuracy on their new labels
EPOCH_CURVES = 4        # widths drawn in the epoch-wise panel


def first_epoch(rows: list[dict], key: str, level: float) -> int | None:
    """The first epoch whose ``key`` reaches ``level``; None if none does.

    Args:
        rows: a run's per-epoch history rows (with ``epoch`` and ``key``).
        key: the value to watch, e.g. ``unchanged_accuracy``.
        level: the value it must reach.
    """
    return next((row["epoch"] for row in rows if row.get(key) is not None and row[key] >= level), None)


def _file_part(text: str) -> str:
    """A model name as a plain part of a file name (a user's model is ``package.module:factory``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]


def _final(rows: list[dict], key: str):
    return rows[-1].get(key) if rows else None


def section_memorization(name: str, runs: list[Run], out: Path) -> Section:
    """One figure per model (one curve per run) and a table per model and noise level: the epochs where
    the kept labels reach ``KEPT_FIT`` and the changed ones ``CHANGED_FIT``, and the final accuracies.

    Args:
        name: the sweep's name (part of the figure file names).
        runs: the sweep's runs.
        out: the folder of the report's figures.
    """
    headers = ["model", "label noise", f"epoch kept >= {KEPT_FIT:g}", f"epoch changed >= {CHANGED_FIT:g}",
               "final kept", "final changed (new labels)", "final changed (original labels)", "final test acc",
               "epochs", "status"]
    rows, figures = [], []
    for model, model_runs in by_model(runs).items():
        curves = []
        for label, group in by_label(model_runs).items():
            histories = [run.metrics if run.status in ("complete", "running", "interrupted") else [] for run in group]
            for run, history in zip(group, histories):
                seed = f", seed {run.group.get('seed')}" if len(group) > 1 else ""
                curves.append({"label": f"{label}{seed}", "metrics": history})
            noise = group[0].group.get("label_noise", group[0].config.get("label_noise"))
            rows.append([model, f"{noise:g}" if isinstance(noise, (int, float)) else label, mean_sd([first_epoch(h, "unchanged_accuracy", KEPT_FIT) for h in histories], 0),
                         mean_sd([first_epoch(h, "changed_accuracy", CHANGED_FIT) for h in histories], 0),
                         mean_sd([_final(h, "unchanged_accuracy") for h in histories]),
                         mean_sd([_final(h, "changed_accuracy") for h in histories]),
                         mean_sd([_final(h, "changed_original_accuracy") for h in histories]),
                         mean_sd([_final(h, "test_accuracy") for h in histories]),
                         mean_sd([len(h) for h in histories if h], 0), status_of(group)])
        if any(curve["metrics"] for curve in curves):
            figures.append(plot_memorization(curves, out / f"{name}-memorization-{_file_part(model)}.png",
                                             title=f"{model} ({name})"))
    return Section(f"Memorization dynamics ({name})",
                   "Training accuracy on the examples whose label the noise kept, on the changed examples against "
                   "their new labels, and on the changed examples against their original labels (Arpit et al. 2017). "
                   f"'epoch kept': the first epoch where the kept labels reach {KEPT_FIT:g}; 'epoch changed': the "
                   f"first where the changed labels reach {CHANGED_FIT:g} ('-': never within the budget).",
                   [(headers, rows)], figures)


def _width_stats(model: str, group: list[Run]) -> dict:
    histories = [run.metrics if run.status in ("complete", "running", "interrupted") else [] for run in group]
    ended = [h for h in histories if h]
    return {"model": model, "width": group[0].group.get("width"), "histories": ended,
            "test_error": [1 - h[-1]["test_accuracy"] for h in ended],
            "train_error": [1 - h[-1]["train_accuracy"] for h in ended],
            "interpolates": bool(ended) and all(h[-1]["train_accuracy"] >= 1.0 for h in ended),
            "fit_epoch": [first_epoch(h, "train_accuracy", 1.0) for h in ended],
            "best_test_error": [1 - max(r["test_accuracy"] for r in h) for h in ended],
            "best_epoch": [max(h, key=lambda r: r["test_accuracy"])["epoch"] for h in ended], "runs": group}


def _plot_double_descent(stats: list[dict], threshold: int | None, path: Path) -> Path:
    fig, (by_width, by_epoch) = plt.subplots(1, 2, figsize=(13, 4.6))
    drawn = [s for s in stats if s["width"] and s["test_error"]]
    widths = [s["width"] for s in drawn]
    for key, label, style in (("test_error", "test error (final)", "o-"), ("best_test_error", "test error (best epoch)", "s:"),
                              ("train_error", "training error (final)", "^--")):
        means = [statistics.mean(s[key]) for s in drawn]
        spread = [statistics.stdev(s[key]) if len(s[key]) > 1 else 0 for s in drawn]
        by_width.errorbar(widths, means, yerr=spread, fmt=style, capsize=3, label=label)
    if threshold:
        by_width.axvline(threshold, color="red", linestyle="--", alpha=0.7, label=f"training error 0 from width {threshold}")
    by_width.set(xscale="log", xlabel="width", ylabel="error", title="(a) error against width", ylim=(0, None))
    picks = drawn if len(drawn) <= EPOCH_CURVES else [drawn[round(i * (len(drawn) - 1) / (EPOCH_CURVES - 1))]
                                                      for i in range(EPOCH_CURVES)]
    for i, s in enumerate(picks):
        for j, history in enumerate(s["histories"]):
            by_epoch.plot([r["epoch"] for r in history], [1 - r["test_accuracy"] for r in history],
                          color=COLORS[i % len(COLORS)], alpha=1.0 if len(s["histories"]) == 1 else 0.6,
                          label=f"width {s['width']}" if j == 0 else None)
    by_epoch.set(xscale="log", xlabel="epoch", ylabel="test error", title="(b) test error against epochs")
    by_width.set_xticks(widths)
    for ax in (by_width, by_epoch):  # plain numbers: the report's text is never parsed as mathtext
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    return save(fig, path)


def section_double_descent(name: str, runs: list[Run], out: Path) -> Section:
    """Final (and best-epoch) test error and final training error against width, mean over seeds, with the
    smallest width whose every run ends with training error 0; test error against epochs for a few widths.

    Args:
        name: the sweep's name (part of the figure file name).
        runs: the sweep's runs, one model (width) per row of the table.
        out: the folder of the report's figures.
    """
    stats = [_width_stats(model, group) for model, group in by_model(runs).items()]
    stats.sort(key=lambda s: (s["width"] is None, s["width"] or 0))
    threshold = next((s["width"] for s in stats if s["width"] and s["interpolates"]), None)
    headers = ["model", "width", "final test error", "final train error", "epoch train error 0",
               "best test error", "at epoch", "status"]
    rows = [[s["model"], str(s["width"] or "-"), mean_sd(s["test_error"]), mean_sd(s["train_error"]),
             mean_sd(s["fit_epoch"], 0), mean_sd(s["best_test_error"]), mean_sd(s["best_epoch"], 0),
             status_of(s["runs"])] for s in stats]
    figures = [_plot_double_descent(stats, threshold, out / f"{name}-double-descent.png")] \
        if any(s["width"] and s["test_error"] for s in stats) else []
    where = f"width {threshold}" if threshold else "no width within the budget"
    return Section(f"Double descent: model size and epochs ({name})",
                   "Test error at the end of a fixed budget against width, mean ± standard deviation over seeds "
                   f"(Nakkiran et al. 2019); training error first reaches 0 at every seed at {where} (the dashed "
                   "line). The best-epoch test error is what early stopping could have had.", [(headers, rows)], figures)
