"""Reports: every section from a runs folder, the paper's numbers on CIFAR-10, and a real browser rendering."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from rethinkgen.cli import main
from rethinkgen.data.cifar import write_batch
from rethinkgen.errors import RethinkgenError
from rethinkgen.experiments import presets
from rethinkgen.experiments.sweep import run_sweep
from rethinkgen.report.document import write_report

FAST = dict(epochs=3, subset=64, test_subset=64)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Small versions of every preset in one runs folder, plus a run that never started."""
    root = tmp_path_factory.mktemp("runs")
    for preset, models in (("figure1a", ["mlp-1x512"]), ("figure1bc", ["mlp-1x512", "mlp-3x512"]),
                           ("table1", ["mlp-1x512"]), ("table4", ["mlp-1x512"]), ("figure2b", ["mlp-1x512"])):
        run_sweep(presets.build(preset, models=models, seeds=[0, 1] if preset == "figure1bc" else [0], **FAST),
                  root, progress=False)
    pending = presets.build("figure2b", models=["mlp-3x512"], name="never-started", **FAST)
    (root / "sweeps" / "never-started.json").write_text(json.dumps(pending.manifest()))
    return root


def test_report_has_every_section_figure_and_table(runs_dir, tmp_path):
    paths = write_report(runs_dir, tmp_path / "report")
    names = {p.name for p in paths}
    for figure in ("figure1a-digits-tiny-figure1a", "figure1bc-digits-tiny-figure1bc", "figure2b-digits-tiny-figure2b"):
        assert f"{figure}.png" in names and f"{figure}.svg" in names
        assert (tmp_path / "report" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (tmp_path / "report" / "report.md").read_text()
    for title in ("Figure 1a", "Figures 1b and 1c", "Table 1", "Table 4", "Figure 2b", "All runs"):
        assert f"## {title}" in markdown
    assert "| mlp-1x512 | 0.3 |" in markdown  # a Figure 1b/1c row per noise level
    assert "(n=2)" in markdown                  # two seeds aggregated as mean and spread
    assert "1 pending" in markdown              # the run that never started is shown, not dropped
    assert "paper:" not in markdown             # digits is not the paper's data
    html = (tmp_path / "report" / "report.html").read_text()
    assert "## Complexity measures against the generalization gap" in markdown  # the cheap measures of every run
    assert html.count("data:image/png;base64,") == 5 and "<table>" in html


def test_failed_and_diverged_runs_are_shown(tmp_path):
    sweep = presets.build("figure1bc", models=["mlp-1x512"], **{**FAST, "lr": 1e6, "epochs": 4, "subset": 256})
    run_sweep(sweep, tmp_path, progress=False)
    write_report(tmp_path)
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "diverged" in markdown


def write_cifar(directory, n_train=120, n_test=60):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    for i in range(1, 6):
        write_batch(directory / f"data_batch_{i}", rng.integers(0, 256, (n_train // 5, 3, 32, 32), dtype=np.uint8),
                    rng.integers(0, 10, n_train // 5))
    write_batch(directory / "test_batch", rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
                rng.integers(0, 10, n_test))
    import pickle
    with open(directory / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"c{k}".encode() for k in range(10)]}, handle)


def test_paper_values_stand_beside_measured_ones_on_cifar10(tmp_path):
    data_dir = tmp_path / "cifar-10-batches-py"
    write_cifar(data_dir)
    for preset in ("figure1bc", "table1"):
        run_sweep(presets.build(preset, scale="paper", data_dir=str(data_dir), models=["mlp-1x512"], epochs=1),
                  tmp_path / "runs", progress=False)
    write_report(tmp_path / "runs")
    markdown = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "paper: time to fit" in markdown and "paper: test acc" in markdown
    assert "| 50.51 |" in markdown  # Table 1, MLP 1x512, no regularizer: test accuracy 50.51%
    assert "| 0.585 |" in markdown  # Figure 1c, MLP 1x512 at label noise 0.1


def test_report_errors_and_cli(tmp_path, capsys, runs_dir):
    with pytest.raises(RethinkgenError, match="not a runs folder"):
        write_report(tmp_path)
    assert main(["report", "--runs", str(tmp_path)]) == 2 and "not a runs folder" in capsys.readouterr().err
    assert main(["report", "--runs", str(runs_dir), "--report-dir", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_its_figures_in_headless_chromium(runs_dir, tmp_path):
    import matplotlib.image

    write_report(runs_dir, tmp_path / "report")
    screenshot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1280,2400",
                    f"--screenshot={screenshot}", (tmp_path / "report" / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(screenshot)[..., :3]
    # matplotlib's first colour (#1f77b4) only appears where a figure's lines were drawn
    blue = np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=-1) < 0.08
    assert blue.sum() > 500
    # and the upper part of the page (the figures) is far from blank
    assert (pixels[:1200].mean(axis=-1) < 0.9).mean() > 0.02


def test_table_rows_of_different_models_are_not_merged(tmp_path):
    sweep = presets.build("table4", models=["mlp-1x512", "mlp-3x512"], **FAST)
    run_sweep(sweep, tmp_path, progress=False)
    write_report(tmp_path)
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| mlp-1x512 | weight decay |" in markdown and "| mlp-3x512 | weight decay |" in markdown
    assert "(n=2)" not in markdown


def test_table2_from_an_image_folder_and_beside_the_paper_on_imagenet(tmp_path):
    from rethinkgen.experiments.presets.table2 import section as section_table2
    from rethinkgen.report import Run
    from test_imagefolder import write_folder

    folder = write_folder(tmp_path / "folder", n_train=9, n_test=3, size=24)
    sweep = presets.build("table2", data_dir=str(folder), models=["mlp-1x512"], epochs=1, subset=None,
                          test_subset=None, workers=0, image_size=24, crop="20")  # smaller than tiny's 86 -> 75
    run_sweep(sweep, tmp_path / "runs", progress=False)
    write_report(tmp_path / "runs")
    markdown = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "## Table 2: ImageNet-style data" in markdown and "paper:" not in markdown
    assert markdown.count("| mlp-1x512 | random | no |") == 3 and markdown.count("| mlp-1x512 | true |") == 4
    assert "1 complete" in markdown and "(" in markdown.split("## Table 2")[1]

    # a whole 1000-class folder gets the paper's numbers beside the measured ones
    runs = [Run("r", "row", {"random_labels": False, "augmentation": False, "dropout": False, "weight_decay": True},
                {"dataset": "imagefolder", "subset": None, "model": "inception-v3"}, "complete",
                {"num_classes": 1000, "train_accuracy": 0.9, "train_top5_accuracy": 1.0, "test_accuracy": 0.6,
                 "best_test_accuracy": 0.7, "test_top5_accuracy": 0.8, "best_test_top5_accuracy": 0.85,
                 "epochs_completed": 3}, tmp_path)]
    headers, rows = section_table2("t", runs, tmp_path).tables[0]
    assert "paper: top-1 test" in headers
    assert rows[0][7] == "60.00 (70.00)" and rows[0][-2:] == ["67.18 (72.57)", "86.44 (91.31)"]
