"""The theory commands of ``rethinkgen``: ``rethinkgen theory memorize|kernel|minnorm|rademacher|stability|double-descent``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

# the rethinkgen modules read while the parser is built, none of which imports torch or numpy (the commands
# import the heavy modules inside their functions, so that `rethinkgen --help` answers at once)
from rethinkgen.checks import integer, number
from rethinkgen.choices import DATASETS, SCALES
from rethinkgen.cli.parser import (
    add_data,
    add_old_labels,
    add_runs,
    add_subset,
    add_test_subset,
)
from rethinkgen.errors import RethinkgenError, choice_error
from rethinkgen.store import safe_name

# the kernel command's enumerations, kept here so that building the parser imports no torch
# (tests check them against rethinkgen.theory.kernels and rethinkgen.theory.features)
KERNEL_CHOICES = ("linear", "rbf", "laplacian")
FEATURE_CHOICES = ("raw", "gabor", "random-conv")
SOLVER_CHOICES = ("auto", "cholesky", "mixed", "cg")
FACTORIZATION_CHOICES = ("auto", "blocked", "lapack")
BANDWIDTH_CHOICES = ("half-median", "median", "recipe")
TABLE3_LABELS = {0.0: "true", 1.0: "random"}  # the label noise of Table 3's two kinds of labels
RESULTS = "runs folder where results and figures are kept"
RANDOM_FEATURES = ("relu", "fourier")  # checked against rethinkgen.theory.double_descent.FEATURES in the tests


def _add_memorize(memorize) -> None:
    add_data(memorize, "digits", DATASETS)
    memorize.add_argument("--label-noise", type=float, default=1.0, metavar="P",
                          help="probability that a training label is replaced by a random class "
                               "(default: 1, random labels; 0: true labels)")
    add_old_labels(memorize)
    add_subset(memorize)
    memorize.add_argument("--seed", type=int, default=0, help="seed of the random labels and the direction")


def _add_kernel(kernel) -> None:
    add_data(kernel, "digits", DATASETS)
    kernel.add_argument("--kernel", default="rbf", choices=KERNEL_CHOICES, help="kernel (default: rbf)")
    kernel.add_argument("--features", default="raw", choices=FEATURE_CHOICES, help="feature map (default: raw)")
    add_subset(kernel, what="training points", old=("--n",))
    add_test_subset(kernel, old=("--n-test",))
    kernel.add_argument("--label-noise", type=float, nargs="+", default=[0.0], metavar="P",
                        help="one or more levels (default: 0); with --table3: 0 (true labels) and/or 1 (random)")
    add_old_labels(kernel, nargs="+")
    kernel.add_argument("--bandwidth", default="half-median",
                        help=f"a number, or {', '.join(BANDWIDTH_CHOICES)} (default: half-median, half the median "
                             "distance; recipe is exp(-0.02 |x - x'|^2), the MNIST recipe)")
    kernel.add_argument("--l2", type=float, default=0.0, help="ridge term (default: 0, pure interpolation)")
    kernel.add_argument("--solver", default="auto", choices=SOLVER_CHOICES,
                        help="auto (default: the first of cholesky, mixed, cg that fits in memory), cholesky "
                             "(float64), mixed (float32 factor refined to float64 by CG) or cg (Nystrom-preconditioned "
                             "CG)")
    kernel.add_argument("--tol", type=float, default=1e-6,
                        help="relative residual |K alpha - Y| / |Y| to reach (default: 1e-6)")
    kernel.add_argument("--max-iter", type=int, default=2000, help="conjugate-gradient iterations at most")
    kernel.add_argument("--precondition-rank", type=int, default=500,
                        help="rank of CG's Nystrom preconditioner (default: 500; 0 = plain CG)")
    kernel.add_argument("--memory-budget", type=float, metavar="GIB",
                        help="memory the solve may use, in GiB (default: what is available now)")
    kernel.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    kernel.add_argument("--factorization", default="auto", choices=FACTORIZATION_CHOICES,
                        help="auto (default: lapack up to n = 16,384, blocked above), blocked (in panels, with a "
                             "progress bar) or lapack (one call, no progress)")
    kernel.add_argument("--seed", type=int, default=0)
    kernel.add_argument("--table3", action="store_true", help="run Table 3's rows instead")
    kernel.add_argument("--scale", default="tiny", choices=SCALES,
                        help="Table 3 size: tiny (2,000), small (10,000) or paper (all) (default: tiny)")
    add_runs(kernel, RESULTS)


def _add_rademacher(rademacher) -> None:
    add_data(rademacher, "digits", DATASETS)
    rademacher.add_argument("--models", nargs="+", default=["constant", "linear", "mlp-1x512"],
                            help="constant, linear, or model names (default: constant linear mlp-1x512)")
    add_subset(rademacher, 200, "training examples (the sample size)", old=("--n",))
    rademacher.add_argument("--draws", type=int, default=5, help="draws of the signs (default: 5)")
    rademacher.add_argument("--epochs", type=int, default=500, help="epoch budget of network fits (default: 500)")
    rademacher.add_argument("--seed", type=int, default=0)
    add_runs(rademacher, RESULTS)


def _add_stability(stability) -> None:
    add_data(stability, "digits", DATASETS)
    stability.add_argument("--model", default="mlp-1x512", help="model (default: mlp-1x512)")
    add_subset(stability, 500, old=("--n",))
    stability.add_argument("--epochs", type=int, default=30, help="epochs (default: 30)")
    stability.add_argument("--index", type=int, default=0, help="which training example is replaced (default: 0)")
    stability.add_argument("--seed", type=int, default=0)
    add_runs(stability, RESULTS)


def _add_double_descent(parser) -> None:
    add_data(parser, "digits", DATASETS)
    parser.add_argument("--random-features", default="relu", choices=RANDOM_FEATURES,
                        help="random ReLU features of the centred pixels, or random Fourier features of a Gaussian "
                             "kernel (default: relu)")
    add_subset(parser, 200, "training points n")
    add_test_subset(parser)
    parser.add_argument("--widths", type=int, nargs="+", metavar="N",
                        help="feature counts N (default: 25 widths from n/20 to 20n, n among them)")
    parser.add_argument("--label-noise", type=float, default=0.0, metavar="P",
                        help="fraction of training labels replaced by random ones (default: 0; noise sharpens "
                             "the peak)")
    parser.add_argument("--ridge", type=float, default=0.0,
                        help="ridge term (default: 0, the minimum-norm least-squares fit)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one fit per seed: the subset, the changed labels and the features (default: 0 1 2)")
    parser.add_argument("--bandwidth", default="half-median",
                        help=f"fourier only: a number, or {', '.join(BANDWIDTH_CHOICES)} (default: half-median)")
    add_runs(parser, RESULTS)


def _add_minnorm(minnorm) -> None:
    add_runs(minnorm, RESULTS)


def _commands() -> dict:
    """name -> (one-line help, description, function adding its flags, function running it)."""
    return {
        "memorize": ("fit a training set exactly with Theorem 1's 2n+d network",
                     ("Build the paper's depth-2 ReLU network with d + n + nK weights that classifies every "
                      "training image correctly, and test it."), _add_memorize, cmd_memorize),
        "kernel": ("minimum-norm kernel interpolation K alpha = Y (Section 5)",
                   ("Solve K alpha = Y on one-hot labels and report norm and errors; several --label-noise values "
                    "also draw the norm against the noise. --table3 runs the rows of Table 3 on the data present. "
                    "Exits 1 when a solve stops short of its tolerance."), _add_kernel, cmd_kernel),
        "minnorm": ("show SGD from zero converging to the minimum-norm solution", None, _add_minnorm, cmd_minnorm),
        "rademacher": ("estimate the empirical Rademacher complexity of model classes",
                       ("Fit random +-1 labels for several draws and report the mean correlation "
                        "(1/n) sum sigma_i h(x_i), with its spread."), _add_rademacher, cmd_rademacher),
        "stability": ("train twice on data differing in one example; show the drift",
                      ("A uniform-stability probe: two models from the same seed and data order, on training "
                       "sets that differ in one example."), _add_stability, cmd_stability),
        "double-descent": ("test error and norm of least squares on N random features, for N from n/20 to 20n",
                           ("Random-features double descent (Belkin, Hsu, Ma & Mandal 2019): the minimum-norm "
                            "least-squares fit on N random features of n training images; the test error peaks "
                            "where N reaches n and falls beyond it, as the norm does."),
                           _add_double_descent, cmd_double_descent),
    }


OLD_NAMES = ("memorize", "kernel", "minnorm", "rademacher", "stability")  # once top-level commands


def add_commands(commands) -> None:
    """``rethinkgen theory COMMAND`` on the top-level sub-command group, and the old top-level names, hidden."""
    theory = commands.add_parser("theory", help="the paper's theory, executable: memorize, kernel, minnorm, "
                                                "rademacher, stability, double-descent",
                                 description="The paper's theory made executable; each command prints its result "
                                             "and keeps it in the runs folder, where the report shows it.")
    group = theory.add_subparsers(dest="theory_command", required=True, metavar="COMMAND")
    for name, (help_text, description, add, handler) in _commands().items():
        add(group.add_parser(name, help=help_text, description=description or help_text))
        group.choices[name].set_defaults(handler=handler)
    for name in OLD_NAMES:
        help_text, description, add, handler = _commands()[name]
        old = commands.add_parser(name, description=description or help_text)  # no help: not listed
        add(old)
        old.set_defaults(handler=handler, old_command=name, new_command=f"theory {name}")


def _print_section(section) -> None:
    print(f"{section.title}")
    for headers, rows in section.tables:
        print("| " + " | ".join(headers) + " |")
        for row in rows:
            print("| " + " | ".join(map(str, row)) + " |")
    for figure in section.figures:
        print(f"figure: {figure}")


def _theory_dir(runs_dir: str) -> Path:
    folder = Path(runs_dir) / "theory"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RethinkgenError(f"runs folder {runs_dir} cannot be written: {error}") from None
    return folder


def cmd_memorize(args) -> int:
    """``rethinkgen theory memorize``: Theorem 1's two-layer network fitting n labels exactly; returns the exit
    status."""
    import numpy as np  # here, not at the top: `rethinkgen --help` imports no numpy

    from rethinkgen import data
    from rethinkgen.data.randomize import randomize
    from rethinkgen.theory.expressivity import class_accuracy, memorize

    if not 0 <= args.label_noise <= 1:
        raise RethinkgenError(f"label noise {args.label_noise!r} is outside [0, 1]")
    if args.dataset not in data.SOURCES:
        raise choice_error("dataset", args.dataset, data.SOURCES)
    options = {"data_dir": args.data_dir} if data.SOURCES[args.dataset].locate else {}
    dataset = data.load(args.dataset, **options)
    if args.subset is not None:  # 0 is refused by subset(), never taken for "all"
        dataset = dataset.subset(args.subset, seed=args.seed)
    dataset, _ = randomize(dataset, label_noise=args.label_noise, seed=args.seed)
    started = time.perf_counter()
    X, labels = dataset.x_train.reshape(len(dataset.x_train), -1) / 255.0, dataset.y_train
    fit = memorize(X, np.eye(dataset.num_classes)[labels], seed=args.seed)
    seconds = time.perf_counter() - started
    train_acc = class_accuracy(fit.network, X, labels)
    test_acc = class_accuracy(fit.network, dataset.x_test.reshape(len(dataset.x_test), -1) / 255.0, dataset.y_test)
    kind = {0.0: "true labels", 1.0: "random labels"}.get(args.label_noise, f"label noise {args.label_noise:g}")
    print(f"{dataset.name}, {kind}: n = {fit.n:,} points, d = {fit.d:,} dimensions, "
          f"{fit.outputs} outputs")
    print(f"  parameters {fit.parameter_count:,} (d + n + nK = {fit.d + fit.n + fit.n * fit.outputs:,}), "
          f"smallest gap {fit.smallest_gap:.3g}, max residual {fit.max_residual:.3g}")
    print(f"  train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} (chance {1 / dataset.num_classes:.2f}), "
          f"built in {seconds:.2f}s")
    return 0


def _kernel_settings(args) -> dict:
    """The kernel command's numeric settings checked, and its solver options for ``interpolate``."""
    for flag, value, low in (("--seed", args.seed, 0), ("--subset", args.subset, 1),
                             ("--test-subset", args.test_subset, 1),
                             ("--max-iter", args.max_iter, 1), ("--precondition-rank", args.precondition_rank, 0)):
        if value is not None:
            integer(flag, value, low)
    number("--tol", args.tol, 0, 1, low_open=True, high_open=True)
    number("--l2", args.l2, 0)
    budget = None
    if args.memory_budget is not None:
        budget = int(number("--memory-budget", args.memory_budget, 0, low_open=True) * 2 ** 30)  # GiB
    bandwidth = args.bandwidth
    if bandwidth not in BANDWIDTH_CHOICES:
        try:
            bandwidth = float(bandwidth)
        except ValueError:
            raise RethinkgenError(f"--bandwidth {bandwidth[:40]!r} must be a number > 0 or one of "
                                  f"{', '.join(BANDWIDTH_CHOICES)}") from None
        number("--bandwidth", bandwidth, 0, low_open=True)
    return {"bandwidth": bandwidth, "solve": {"tol": args.tol, "budget_bytes": budget, "device": args.device,
                                              "factorization": args.factorization, "max_iter": args.max_iter}}


def _report_unconverged(rows) -> int:
    """A warning line per solve that stopped short of its tolerance; the exit status (1 if any did)."""
    short = [r for r in rows if not r["converged"]]
    for row in short:
        print(f"rethinkgen: warning: {row['dataset']} {row['features']} label noise {row['label_noise']:g}: the "
              f"{row['solver']} solve stopped after {row['iterations']} iterations at relative residual "
              f"{row['relative_residual']:.1e} > tolerance {row['tol']:g}; the solution does not interpolate",
              file=sys.stderr)
    return 1 if short else 0


def _table3_labels(levels: list[float]) -> list[str]:
    """Table 3's kinds of labels from --label-noise levels: 0 true, 1 random."""
    for level in levels:
        if level not in TABLE3_LABELS:
            raise RethinkgenError(f"--table3 takes --label-noise 0 (true labels) and/or 1 (random labels), "
                                  f"not {level!r}")
    return [TABLE3_LABELS[level] for level in dict.fromkeys(levels)]


def cmd_kernel(args) -> int:
    """``rethinkgen theory kernel``: minimum-norm kernel interpolation (Section 5, Table 3), stored for the report;
    returns the exit status (1 when a solve stopped short of its tolerance)."""
    from rethinkgen import data
    from rethinkgen.report.document import save_section
    from rethinkgen.theory import experiments

    settings = _kernel_settings(args)
    folder = _theory_dir(args.runs_dir)
    if args.table3:
        section, _, rows = experiments.table3(args.scale, args.seed, args.data_dir, labels=_table3_labels(args.label_noise),
                                              progress=True, **settings["solve"])
        save_section(args.runs_dir, f"table3-{args.scale}", section)
        _print_section(section)
        return _report_unconverged(rows)
    if args.dataset not in data.SOURCES:
        raise choice_error("dataset", args.dataset, data.SOURCES)
    for noise in args.label_noise:
        if not 0 <= noise <= 1:
            raise RethinkgenError(f"label noise {noise!r} is outside [0, 1]")
    rows = experiments.kernel_rows(args.dataset, args.kernel, args.features, sorted(args.label_noise), args.subset,
                                   args.test_subset, settings["bandwidth"], args.l2, args.solver, args.seed,
                                   args.data_dir, precondition_rank=args.precondition_rank, progress=True,
                                   **settings["solve"])
    name = safe_name(f"kernel-{args.dataset}-{args.features}-{args.kernel}-n{rows[0]['n']}", "result name")
    figure = experiments.norm_against_noise(rows, folder / f"{name}.png") if len(rows) > 1 else None
    section = experiments.kernel_section(rows, figure)
    save_section(args.runs_dir, name, section)
    _print_section(section)
    return _report_unconverged(rows)


def cmd_double_descent(args) -> int:
    """``rethinkgen theory double-descent``: random-features least squares against the feature count, stored for the
    report; returns the exit status."""
    from rethinkgen.theory.double_descent import double_descent, save_double_descent

    bandwidth = args.bandwidth
    try:
        bandwidth = float(bandwidth)
    except ValueError:
        if bandwidth not in BANDWIDTH_CHOICES:
            raise choice_error("bandwidth", bandwidth, (*BANDWIDTH_CHOICES, "a positive number")) from None
    result = double_descent(args.dataset, args.subset, args.test_subset, args.widths, args.random_features,
                            args.label_noise, args.ridge, args.seeds, bandwidth, args.data_dir)
    paths = save_double_descent(result, args.runs_dir)
    headers, rows = result.table()
    print("| " + " | ".join(headers) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(result.summary())
    print(f"figure: {paths['png']}")
    return 0


def cmd_minnorm(args) -> int:
    """``rethinkgen theory minnorm``: SGD from zero reaching the minimum-norm solution, stored for the report;
    returns the exit status."""
    from rethinkgen.report.document import save_section
    from rethinkgen.theory.experiments import min_norm_section

    section = min_norm_section(_theory_dir(args.runs_dir) / "sgd-min-norm.png")
    save_section(args.runs_dir, "sgd-min-norm", section)
    _print_section(section)
    return 0


def _load(dataset: str, data_dir: str | None):
    from rethinkgen import data

    if dataset not in data.SOURCES:
        raise choice_error("dataset", dataset, data.SOURCES)
    return data.load(dataset, **({"data_dir": data_dir} if data.SOURCES[dataset].locate else {}))


def cmd_rademacher(args) -> int:
    """``rethinkgen theory rademacher``: how well each model class fits random signs, stored for the report;
    returns the exit status."""
    from rethinkgen.report import Section
    from rethinkgen.report.document import save_section
    from rethinkgen.theory import capacity

    dataset = _load(args.dataset, args.data_dir)
    results = capacity.rademacher_suite(dataset, args.models, n=args.subset, draws=args.draws, epochs=args.epochs,
                                        seed=args.seed)
    name = safe_name(f"rademacher-{args.dataset}-n{args.subset}", "result name")
    figure = capacity.plot_rademacher(results, _theory_dir(args.runs_dir) / f"{name}.png",
                                      title=f"{args.dataset}, n = {args.subset}, {args.draws} draws")
    rows = [[label, f"{r.mean:.3f}", f"{r.std:.3f}", str(r.draws), str(r.n)] for label, r in results.items()]
    section = Section(f"Empirical Rademacher complexity ({args.dataset}, n = {args.subset})",
                      "Mean over draws of (1/n) sum sigma_i h(x_i), h trained on random signs sigma. 1 is the trivial "
                      "bound: a class that fits every draw has a vacuous Rademacher bound.",
                      [(["model class", "mean", "std", "draws", "n"], rows)], [figure])
    save_section(args.runs_dir, name, section)
    _print_section(section)
    return 0


def cmd_stability(args) -> int:
    """``rethinkgen theory stability``: two runs whose data differ in one example, compared epoch by epoch, stored
    for the report; returns the exit status."""
    from rethinkgen.report import Section
    from rethinkgen.report.document import save_section
    from rethinkgen.theory import capacity

    name = safe_name(f"stability-{args.dataset}-{args.model.replace(':', '_')}-n{args.subset}", "result name")
    dataset = _load(args.dataset, args.data_dir)
    result = capacity.stability_probe(dataset, model=args.model, n=args.subset, epochs=args.epochs,
                                      replaced_index=args.index, seed=args.seed)
    figure = capacity.plot_stability(result, _theory_dir(args.runs_dir) / f"{name}.png",
                                     title=f"{args.model} on {args.dataset}, n = {args.subset}")
    rows = [[str(r["epoch"]), f"{r['loss_difference']:.2e}", f"{r['max_loss_difference']:.2e}",
             f"{r['disagreement']:.3f}", f"{r['parameter_distance']:.3e}"] for r in result.rows]
    section = Section(f"Uniform-stability probe ({args.model} on {args.dataset})",
                      "Two models from the same seed and data order, trained on sets that differ in one example: how "
                      "far their test losses, predictions and weights drift apart.",
                      [(["epoch", "mean |loss difference|", "max |loss difference|", "disagreement",
                         "parameter distance"], rows)], [figure])
    save_section(args.runs_dir, name, section)
    _print_section(section)
    return 0
