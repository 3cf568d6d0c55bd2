"""The theory commands: each prints its result, keeps it in the runs folder, and the report shows it."""

import pytest

from rethinkgen.cli import main
from rethinkgen.report import write_report


def test_theory_commands_store_results_that_the_report_shows(tmp_path, capsys):
    out = str(tmp_path / "runs")
    assert main(["kernel", "--n", "300", "--n-test", "200", "--label-noise", "0", "1", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "| digits | raw | rbf | 0 | 300 | cholesky |" in printed and "| 0.00% |" in printed
    assert main(["minnorm", "--out", out]) == 0
    assert main(["rademacher", "--models", "constant", "linear", "--n", "40", "--draws", "3", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "| linear | 1.000 | 0.000 | 3 | 40 |" in printed  # 40 points in 64 dimensions: linear fits any signs
    assert main(["stability", "--n", "100", "--epochs", "2", "--out", out]) == 0
    assert "| 2 |" in capsys.readouterr().out
    write_report(out)
    markdown = (tmp_path / "runs" / "report" / "report.md").read_text()
    for title in ("minimum-norm kernel interpolation", "SGD converges to the minimum-norm solution",
                  "Empirical Rademacher complexity", "Uniform-stability probe"):
        assert title in markdown
    for figure in ("kernel-digits-raw-rbf-n300.png", "sgd-min-norm.png", "rademacher-digits-n40.png",
                   "stability-digits-mlp-1x512-n100.png"):
        assert (tmp_path / "runs" / "report" / figure).is_file()
    html = (tmp_path / "runs" / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4


def test_table3_runs_on_the_data_present(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path / "empty"))
    from rethinkgen.theory import experiments

    monkeypatch.setitem(experiments.TABLE3_SIZES, "tiny", (300, 200))
    assert main(["kernel", "--table3", "--out", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "Table 3" in printed and "| raw |" in printed and "| gabor |" in printed
    assert "paper: test error" in printed


@pytest.mark.parametrize("argv, message", [
    (["kernel", "--kernel", "poly"], "unknown kernel 'poly'"),
    (["kernel", "--features", "sift"], "unknown feature map 'sift'"),
    (["kernel", "--label-noise", "1.5"], "label noise 1.5 is outside [0, 1]"),
    (["kernel", "--table3", "--scale", "huge"], "unknown scale 'huge'"),
    (["rademacher", "--models", "resnet"], "resnet"),
    (["stability", "--n", "99999"], "99999"),
    (["memorize", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
])
def test_bad_theory_arguments(tmp_path, capsys, argv, message):
    assert main(argv + ["--out", str(tmp_path)] if argv[0] != "memorize" else argv) == 2
    assert message in capsys.readouterr().err
