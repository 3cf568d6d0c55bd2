"""The presets that follow the paper: memorization dynamics and model-size double descent, their runs and
their report sections drawn from a few short real runs."""

import pytest

from rethinkgen.cli import main
from rethinkgen.experiments import presets
from rethinkgen.experiments.presets import double_descent
from rethinkgen.experiments.sweep import run_sweep
from rethinkgen.report import first_epoch
from rethinkgen.report.document import write_report

FAST = dict(epochs=4, subset=96, test_subset=64)


@pytest.mark.parametrize("scale, models", [("tiny", ["mlp-1x512", "mlp-3x512"]), ("small", ["mlp-1x512", "mlp-3x512"]),
                                           ("paper", ["alexnet-small", "inception-small"])])
def test_memorization_runs_four_noise_levels_per_model_for_a_fixed_budget(scale, models):
    sweep = presets.build("memorization", scale=scale)
    assert len(sweep.runs) == 8 and len({r.config.run_id() for r in sweep.runs}) == 8
    assert [r.config.model for r in sweep.runs[::4]] == models
    assert [r.config.label_noise for r in sweep.runs[:4]] == [0.2, 0.4, 0.6, 0.8]
    assert [r.group["label_noise"] for r in sweep.runs[:4]] == [0.2, 0.4, 0.6, 0.8]
    for run in sweep.runs:
        c = run.config
        assert not c.stop_at_fit and c.epochs == presets.PRESETS["memorization"].epochs[scale] and c.lr is None
    tiny = presets.build("memorization").runs[0].config
    assert tiny.lr_decay == pytest.approx(0.95 ** (2 / 391))  # the rate falls per step as in the other presets
    assert len(presets.build("memorization", models=["alexnet-small"], seeds=[0, 1]).runs) == 8


@pytest.mark.parametrize("scale, family, widths", [
    ("tiny", "mlp-1x", [2, 4, 6, 8, 10, 12, 16, 24, 32, 64, 128, 256, 512]),
    ("paper", "cnn5-", [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64])])
def test_double_descent_sweeps_the_width_at_label_noise_0_2(scale, family, widths):
    sweep = presets.build("double-descent", scale=scale, seeds=[0, 1])
    assert len(sweep.runs) == 2 * len(widths)
    assert [r.group["width"] for r in sweep.runs[::2]] == widths
    assert [r.config.model for r in sweep.runs[::2]] == [f"{family}{w}" for w in widths]
    assert {r.config.seed for r in sweep.runs} == {0, 1}
    for run in sweep.runs:
        c = run.config
        assert c.label_noise == 0.2 and not c.stop_at_fit and c.lr_decay == 1.0 and c.lr == double_descent.LR
        assert c.epochs == presets.PRESETS["double-descent"].epochs[scale]
    assert presets.build("double-descent", models=["mlp-1x7"]).runs[0].group["width"] == 7
    assert len({r.config.subset for r in presets.build("double-descent", scale="small").runs}) == 1
    # at tiny scale: all 1,347 digits (the peak is lost in the noise of 256), a subset of larger data
    assert {(r.config.subset, r.config.test_subset) for r in presets.build("double-descent").runs} == {(None, None)}
    fashion = presets.build("double-descent", dataset="fashion-mnist").runs[0].config
    assert (fashion.subset, fashion.test_subset) == (1500, 500)


def test_the_new_presets_are_sweep_choices(tmp_path, capsys):
    assert main(["sweep", "--preset", "double-descent", "--dry-run", "--runs", str(tmp_path)]) == 0
    assert "13 run(s)" in capsys.readouterr().out
    assert main(["sweep", "--preset", "memorization", "--dry-run", "--runs", str(tmp_path)]) == 0


def test_first_epoch_reaching_a_level():
    rows = [{"epoch": 1, "a": 0.2}, {"epoch": 2, "a": None}, {"epoch": 3, "a": 0.6}, {"epoch": 4, "a": 0.9}]
    assert first_epoch(rows, "a", 0.5) == 3 and first_epoch(rows, "a", 0.95) is None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_sweep(presets.build("memorization", models=["mlp-1x64"], **FAST), root, progress=False)
    run_sweep(presets.build("double-descent", models=["mlp-1x4", "mlp-1x32", "mlp-1x128"], seeds=[0, 1], **FAST),
              root, progress=False)
    write_report(root, root / "report")
    return root / "report"


def test_memorization_section_draws_a_figure_per_model_and_a_row_per_noise_level(report):
    markdown = (report / "report.md").read_text()
    assert "## Memorization dynamics (memorization-digits-tiny)" in markdown
    figure = report / "memorization-digits-tiny-memorization-mlp-1x64.png"
    assert figure.read_bytes()[:4] == b"\x89PNG" and figure.with_suffix(".svg").is_file()
    for noise in ("0.2", "0.4", "0.6", "0.8"):
        assert f"| mlp-1x64 | {noise} |" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| mlp-1x64 | 0.4 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[-2] == "4" and cells[-1].startswith("1 complete")  # the whole budget ran: no stop at fit
    assert all(0 <= float(cell) <= 1 for cell in cells[4:8])


def test_double_descent_section_plots_error_against_width_over_seeds(report):
    markdown = (report / "report.md").read_text()
    assert "## Double descent: model size and epochs (double-descent-digits-tiny)" in markdown
    assert (report / "double-descent-digits-tiny-double-descent.png").read_bytes()[:4] == b"\x89PNG"
    widths = [line.split("|")[2].strip() for line in markdown.splitlines() if line.startswith("| mlp-1x")
              and "2 complete" in line]
    assert widths == ["4", "32", "128"]
    assert "(n=2)" in markdown  # two seeds per width: mean ± standard deviation
