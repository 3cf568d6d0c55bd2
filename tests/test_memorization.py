"""Memorization dynamics: the training accuracy split by changed labels, per epoch, and its figure."""

from rethinkgen.config import RunConfig
from rethinkgen.engine.trainer import train
from rethinkgen.report.figures import plot_memorization


def test_a_noisy_run_fits_its_kept_labels_before_its_changed_ones(tmp_path):
    config = RunConfig(dataset="digits", subset=400, test_subset=100, model="mlp-1x512", epochs=40, lr=0.05,
                       label_noise=0.4, lr_decay=1.0, log_every=4)
    rows = train(config, tmp_path, progress=False).metrics
    early, late = rows[5], rows[-1]
    # the true pattern is learned first: the kept labels are fit, the changed examples get their original class
    assert early["unchanged_accuracy"] > 0.8 and early["changed_accuracy"] < 0.2
    assert early["changed_original_accuracy"] > 0.5
    # ... and the changed labels are memorized later, at the cost of their original class
    assert late["changed_accuracy"] > 0.5 and late["changed_original_accuracy"] < 0.4
    for row in rows:
        assert 0 <= row["changed_original_accuracy"] <= 1


def test_the_memorization_figure_is_written_as_png_and_svg(tmp_path):
    rows = [{"step": 10 * i, "unchanged_accuracy": 0.1 * i, "changed_accuracy": 0.05 * i,
             "changed_original_accuracy": 0.3} for i in range(5)]
    clean = [{"step": 10, "unchanged_accuracy": None, "changed_accuracy": None, "changed_original_accuracy": None}]
    path = plot_memorization([{"label": "p=0.4", "metrics": rows}, {"label": "p=0", "metrics": clean}],
                             tmp_path / "memorization.png", title="MLP")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = path.with_suffix(".svg").read_text()
    for words in ("examples whose label was kept", "accuracy on their new labels", "p=0.4", "MLP"):
        assert words in svg
