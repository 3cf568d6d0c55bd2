"""Model-wise and epoch-wise double descent (Nakkiran et al. 2019): test error against width and against
epochs at label noise 0.2, for a fixed budget at a constant rate, over the widths of ``mlp-1xW`` (tiny,
small) or ``cnn5-K`` (paper). It reads each run's per-epoch history (``metrics.jsonl``)."""

from __future__ import annotations

import statistics
from pathlib import Path

from matplotlib.ticker import FuncFormatter

from rethinkgen.experiments.presets.registry import register_preset
from rethinkgen.registry import family_of
from rethinkgen.report import Run, Section, by_model, first_epoch, mean_sd, status_of
from rethinkgen.report.figures import COLORS, plt, save

NOISE = 0.2
LR = 0.05               # constant (no decay): memorizing the noise late in the budget needs a rate that stays
EPOCH_CURVES = 4        # widths drawn in the epoch-wise panel


def model_width(model: str) -> int | None:
    """The width of a model of a sized family (W of ``mlp-DxW``, K of ``cnn5-K``); None for other models."""
    family = family_of(model)
    return family[1][-1] if family else None


def _width_stats(model: str, group: list[Run]) -> dict:
    histories = [run.history for run in group]
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


def section(name: str, runs: list[Run], out: Path) -> Section:
    """Final (and best-epoch) test error and final training error against width, mean over seeds, with the smallest
    width whose every run ends with training error 0; test error against epochs for a few widths (see
    ``Preset.section``)."""
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


@register_preset("double-descent", "Model-wise and epoch-wise double descent (Nakkiran et al. 2019): test error "
                 "against width and against epochs at label noise 0.2, for a fixed budget",
                 epochs={"paper": 500, "small": 500, "tiny": 400},
                 models={"paper": [f"cnn5-{k}" for k in (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)],
                         "small": [f"mlp-1x{w}" for w in (2, 4, 8, 12, 16, 24, 32, 64, 128, 256, 512, 1024)],
                         "tiny": [f"mlp-1x{w}" for w in (2, 4, 6, 8, 10, 12, 16, 24, 32, 64, 128, 256, 512)]},
                 section=section, fixed_budget=True, settings={"lr": LR, "lr_decay": 1.0},
                 # at 256 digits the model-size peak is lost in the noise of 256 test images; on all 1,347
                 # digits (1,500 > 1,347) it is clear
                 sizes={"tiny": (1500, 500)})
def rows(model: str):
    """One run per model (its width is the group's ``width``)."""
    width = model_width(model)
    yield f"width {width}" if width else model, {"width": width, "label_noise": NOISE}, {"label_noise": NOISE}
