"""The theory commands: each prints its result, keeps it in the runs folder, and the report shows it."""

import pytest

from rethinkgen.cli import main
from rethinkgen.report.document import write_report


def test_theory_commands_store_results_that_the_report_shows(tmp_path, capsys):
    out = str(tmp_path / "runs")
    assert main(["theory", "kernel", "--subset", "300", "--test-subset", "200", "--label-noise", "0", "1", "--runs", out]) == 0
    printed = capsys.readouterr().out
    assert "| digits | raw | rbf | 0 | 300 | cholesky |" in printed and "| 0.00% |" in printed
    assert main(["theory", "minnorm", "--runs", out]) == 0
    assert main(["theory", "rademacher", "--models", "constant", "linear", "--subset", "40", "--draws", "3", "--runs", out]) == 0
    printed = capsys.readouterr().out
    assert "| linear | 1.000 | 0.000 | 3 | 40 |" in printed  # 40 points in 64 dimensions: linear fits any signs
    assert main(["theory", "stability", "--subset", "100", "--epochs", "2", "--runs", out]) == 0
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
    assert main(["theory", "kernel", "--table3", "--runs", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "Table 3" in printed and "| raw |" in printed and "| gabor |" in printed
    assert "paper: test error" in printed


@pytest.mark.parametrize("argv, message", [
    (["theory", "kernel", "--seed", "-1"], "--seed -1 must be an integer >= 0"),
    (["theory", "kernel", "--subset", "0"], "--subset 0 must be an integer >= 1"),
    (["theory", "kernel", "--test-subset", "0"], "--test-subset 0 must be an integer >= 1"),
    (["theory", "kernel", "--solver", "cg", "--max-iter", "0"], "--max-iter 0 must be an integer >= 1"),
    (["theory", "kernel", "--precondition-rank", "-3"], "--precondition-rank -3 must be an integer >= 0"),
    (["theory", "kernel", "--tol", "0"], "--tol 0.0 is outside (0, 1)"),
    (["theory", "kernel", "--bandwidth", "wide"], "--bandwidth 'wide' must be a number > 0 or one of half-median, median"),
    (["theory", "kernel", "--bandwidth", "-2"], "--bandwidth -2.0 must be a number > 0"),
    (["theory", "kernel", "--memory-budget", "0"], "--memory-budget 0.0 must be a number > 0"),
    (["theory", "kernel", "--memory-budget", "0.01"], "every solver needs at least"),
    (["theory", "kernel", "--device", "gpu0"], "unknown device 'gpu0'"),
    (["theory", "kernel", "--table3", "--label-noise", "0.5"], "--table3 takes --label-noise 0 (true labels) and/or 1"),
    (["theory", "kernel", "--subset", "99999"], "99999"),
    (["theory", "kernel", "--label-noise", "1.5"], "label noise 1.5 is outside [0, 1]"),
    (["theory", "rademacher", "--models", "resnet"], "resnet"),
    (["theory", "stability", "--subset", "99999"], "99999"),
    (["theory", "memorize", "--dataset", "imagenet"], "argument --dataset: unknown value 'imagenet'; allowed: digits"),
])
def test_bad_theory_arguments(tmp_path, capsys, argv, message):
    assert main(argv + ["--runs", str(tmp_path)] if argv[1] != "memorize" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("rethinkgen: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["theory", "kernel", "--kernel", "poly"], "argument --kernel: unknown value 'poly'; allowed: linear, rbf"),
    (["theory", "kernel", "--features", "sift"], "unknown value 'sift'; allowed: raw, gabor, random-conv"),
    (["theory", "kernel", "--solver", "svd"], "unknown value 'svd'"),
    (["theory", "kernel", "--factorization", "qr"], "unknown value 'qr'"),
    (["theory", "kernel", "--table3", "--scale", "huge"], "argument --scale: unknown value 'huge'"),
])
def test_kernel_enumerations_are_argparse_choices(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("rethinkgen: error: ") and err.count("\n") == 1


def test_kernel_choices_match_the_library():
    from rethinkgen.cli import theory as cli
    from rethinkgen.theory import features, kernels

    assert cli.KERNEL_CHOICES == kernels.KERNELS and cli.SOLVER_CHOICES == kernels.SOLVERS
    assert cli.FACTORIZATION_CHOICES == kernels.FACTORIZATIONS and cli.BANDWIDTH_CHOICES == kernels.BANDWIDTHS
    assert cli.FEATURE_CHOICES == tuple(features.FEATURE_MAPS)


def test_a_solve_that_stops_short_of_its_tolerance_exits_non_zero_and_says_so(tmp_path, capsys):
    argv = ["theory", "kernel", "--subset", "200", "--test-subset", "100", "--solver", "cg", "--max-iter", "2", "--precondition-rank",
            "0", "--runs", str(tmp_path)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "(not converged)" in captured.out
    assert ("rethinkgen: warning: digits raw label noise 0: the cg solve stopped after 2 iterations at relative "
            "residual") in captured.err and "> tolerance 1e-06; the solution does not interpolate" in captured.err
    assert main(argv[:6] + ["--solver", "mixed", "--runs", str(tmp_path)]) == 0
    assert "| mixed (" in capsys.readouterr().out
