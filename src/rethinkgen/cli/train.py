"""The training commands of ``rethinkgen``: run, demo, sweep, report, measures (parsing and printing only)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

# the rethinkgen modules read while the parser is built, none of which imports torch (the commands import
# the heavy modules inside their functions, so that `rethinkgen --help` answers at once)
from rethinkgen.choices import AUGMENTATIONS, EXECUTORS, INPUTS, MEASURE_SETS, PRESETS, RESULT_FORMATS, SCALES
from rethinkgen.cli.lists import import_modules, print_measures
from rethinkgen.cli.parser import (
    HIDDEN,
    RenamedFlag,
    RenamedStore,
    add_data,
    add_old_runs_positional,
    add_quiet,
    add_runs,
    add_subset,
    add_test_subset,
    runs_folder,
)
from rethinkgen.config import RunConfig, check_device
from rethinkgen.errors import DamagedFile, RethinkgenError, shown, warn

RUN_FLAG_TYPES = {int: int, float: float, str: str}
# config fields that the config checks itself but that are enumerations all the same
FIELD_CHOICES = {"inputs": INPUTS, "measures": MEASURE_SETS}


def comma_choices(allowed: tuple[str, ...]):
    """An argparse ``type`` for a list flag whose items may also be comma-separated (``crop,flip``): each name
    must be one of ``allowed`` (kept as the function's ``choices``)."""

    def names(text: str) -> list[str]:
        items = [name for name in text.split(",") if name]
        for name in items:
            if name not in allowed:
                raise argparse.ArgumentTypeError(f"unknown value {shown(name)}; allowed: {', '.join(allowed)}")
        return items

    names.choices = allowed
    return names


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, each defaulting to 'not given' so a --config file can fill it."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        annotation = hints[f.name]
        base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Union else annotation
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default})" if f.default not in ((), None) \
            else f.metadata["help"]
        choices = f.metadata.get("choices", FIELD_CHOICES.get(f.name))
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        elif f.name == "augment":
            parser.add_argument(flag, nargs="+", type=comma_choices(AUGMENTATIONS), default=argparse.SUPPRESS,
                                metavar="NAME", help=help_text)
        elif choices is not None:
            parser.add_argument(flag, choices=choices, default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, type=RUN_FLAG_TYPES[base], default=argparse.SUPPRESS,
                                metavar=f.name.upper(), help=help_text)


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's settings: the --config file (if any) overridden by the flags given."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if "augment" in given:
        given["augment"] = [name for names_given in given["augment"] for name in names_given]
    if args.config:
        return RunConfig.from_file(args.config, given)
    return RunConfig.from_mapping(given)


def add_commands(commands) -> None:
    """The run, demo, sweep, report and measures commands, on the ``rethinkgen`` sub-command group."""
    run = commands.add_parser("run", help="train one run (resumes it if it was interrupted)",
                              description="Train one run. Every setting is a flag, or a key of --config.")
    run.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings; flags override it")
    run.add_argument("--print-config", action="store_true",
                     help="print the resolved settings as YAML (a file --config reads back) and train nothing")
    add_runs(run)
    add_quiet(run)
    run.add_argument("--restart", action="store_true",
                     help="if the run has not finished (interrupted, failed, or its checkpoint damaged), discard its "
                          "checkpoint and logs and train it from the start; a finished run is left as it is")
    _add_config_flags(run)
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="the main job: six randomizations, a figure and a table",
                               description="Train one model on true labels, label noise 0.5, random labels, "
                                           "shuffled pixels, random pixels and Gaussian inputs.")
    add_data(demo, None, what="data source (default: digits, bundled)")
    demo.add_argument("--model", help="model (default: mlp-1x512)")
    add_subset(demo)
    add_test_subset(demo)
    demo.add_argument("--epochs", type=int, help="epoch budget per run (default: 600; each stops at fit)")
    demo.add_argument("--seed", type=int, help="seed (default: 0)")
    add_runs(demo)
    add_quiet(demo)
    demo.set_defaults(handler=cmd_demo)
    _add_sweep(commands)

    report = commands.add_parser("report", help="write report.html, report.md and figures from a runs folder",
                                 description="Write report.html (figures embedded), report.md and every figure as "
                                             "PNG and SVG from the runs of a runs folder; it reads the folder only.")
    add_runs(report, old=())
    add_old_runs_positional(report)
    report.add_argument("--report-dir", metavar="DIR", help="where to write the report (default: RUNS/report)")
    report.add_argument("--out", dest="report_dir", action=RenamedStore, new="--report-dir", help=HIDDEN)
    report.set_defaults(handler=cmd_report)
    _add_measures(commands)

    table = commands.add_parser("results", help="the runs table (one row per run) as text, CSV, JSON or parquet",
                                description="One row per run of a runs folder: its settings and summary metrics.")
    add_runs(table, old=())
    add_old_runs_positional(table)
    table.add_argument("--format", default="table", choices=RESULT_FORMATS,
                       help="table, csv, json or parquet (parquet needs pyarrow and --output) (default: table)")
    table.add_argument("--where", nargs="+", default=[], metavar="KEY=VALUE",
                       help="keep the runs whose column KEY is VALUE")
    table.add_argument("--columns", help="the columns to show, as a,b,c (default: all)")
    table.add_argument("--output", metavar="FILE", help="write to this file (default: standard output)")
    table.set_defaults(handler=cmd_results)


def _add_sweep(commands) -> None:
    sweep = commands.add_parser("sweep", help="run many runs from a spec file or a preset of the paper",
                                description="Run a sweep: a YAML/JSON spec (base, axes, zip, seeds) or --preset. "
                                            "Finished runs are skipped, interrupted ones resumed.")
    sweep.add_argument("spec", nargs="?", help="sweep spec file (YAML or JSON)")
    sweep.add_argument("--preset", choices=PRESETS, help="one of the paper's experiments (see `rethinkgen list presets`)")
    sweep.add_argument("--scale", choices=SCALES, help="size of a preset's runs (default: tiny; presets only)")
    add_data(sweep, None, what="data source (default: cifar10 at paper scale, else digits; presets only)")
    sweep.add_argument("--models", nargs="+", metavar="MODEL", help="models to include (presets only)")
    sweep.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds (default: 0)")
    sweep.add_argument("--fit-threshold", type=float, help="training accuracy that counts as fitted (default: 1.0)")
    sweep.add_argument("--epochs", type=int, help="override every run's epoch budget")
    add_runs(sweep)
    sweep.add_argument("--executor", default="local", choices=EXECUTORS,
                       help="local (this machine) or ray (a Ray cluster; pip install 'rethinkgen[ray]') "
                            "(default: local)")
    sweep.add_argument("--address", help="Ray cluster address, e.g. auto or HOST:6379 (default: Ray's RAY_ADDRESS, "
                                         "a cluster started here with `ray start`, or a new local runtime)")
    sweep.add_argument("--workers", type=int, help="runs at once, in local processes (default: 1)")
    sweep.add_argument("--ensemble", default="1", metavar="K",
                       help="train up to K compatible runs at once as one batched model, or 'auto' (default: 1)")
    sweep.add_argument("--runs-per-gpu", type=int, metavar="K",
                       help="runs sharing each GPU: K local workers per GPU, or 1/K of a GPU per Ray task")
    sweep.add_argument("--cpus-per-run", type=int, metavar="N",
                       help="CPU threads of each run, and the CPUs each Ray task asks for "
                            "(default: 1 on Ray, the CPUs divided among the local workers)")
    sweep.add_argument("--retry-failed", action="store_true", help="run again the runs that failed before")
    sweep.add_argument("--restart", action="store_true",
                       help="train every unfinished run (interrupted, failed, damaged) from the start, discarding its "
                            "checkpoint and logs; finished runs are left as they are")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs and their estimated cost; train nothing")
    add_quiet(sweep)
    sweep.set_defaults(handler=cmd_sweep)


def _add_measures(commands) -> None:
    measure = commands.add_parser(
        "measures", help="compute complexity measures of finished runs and test them against the generalization gap",
        description="Compute the measures each completed run lacks, from its checkpoint and on the data it trained "
                    "on; then print, for each measure, Kendall's tau with the generalization gap across the runs and "
                    "the granulated tau (Jiang et al. 2019: the mean over hyperparameter axes of tau when only that "
                    "axis varies), with the number of runs behind each figure.")
    add_runs(measure, old=())
    add_old_runs_positional(measure)
    measure.add_argument("--only", nargs="+", metavar="NAME",
                         help="compute and test only these measures (default: all; see `rethinkgen list measures`)")
    measure.add_argument("--list", action=RenamedFlag, new="`rethinkgen list measures`", help=HIDDEN)
    computing = measure.add_mutually_exclusive_group()
    computing.add_argument("--recompute", action="store_true", help="compute again the measures already stored")
    computing.add_argument("--no-compute", action="store_true", help="test the stored values only; compute nothing")
    measure.add_argument("--import", dest="imports", nargs="+", default=[], metavar="MODULE",
                         help="import these modules first (to register measures of your own)")
    measure.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_quiet(measure)
    measure.set_defaults(handler=cmd_measures)


def print_config(config: RunConfig) -> None:
    """The resolved settings as YAML, in the config's field order: a file that ``--config`` reads back."""
    import yaml

    print(yaml.safe_dump(config.resolved().to_dict(), sort_keys=False, default_flow_style=False), end="")


def cmd_run(args) -> int:
    """``rethinkgen run``: train one run from ``args`` (the parsed command line); returns the exit status."""
    # training imports torch: imported here, not at the top, so that `rethinkgen --help` stays fast
    from rethinkgen.engine import distributed
    from rethinkgen.engine.trainer import train

    config = _config_from_args(args)
    if args.print_config:
        print_config(config)
        return 0
    result = train(config, args.runs_dir, progress=not args.quiet, log=print if args.quiet else None, restart=args.restart)
    if not distributed.from_environment().is_main:
        return 0  # under torchrun, rank 0 reports for all
    from rethinkgen.outcome import DID_NOT_FIT, did_not_fit, fit_words, label_words

    s = result.summary
    fit = fit_words(s, result.config.fit_threshold)
    print(f"run {result.run_id} [{s['status']}] in {result.run_dir}"
          + (f": {DID_NOT_FIT} its training labels" if did_not_fit(s["status"], s) else ""))
    if s["train_accuracy"] is not None:
        print(f"  train accuracy {s['train_accuracy']:.4f}  test accuracy {s['test_accuracy']:.4f}  "
              f"gap {s['generalization_gap']:+.4f}  {fit}  best test {s['best_test_accuracy']:.4f} "
              f"(epoch {s['best_test_epoch']})  {s['wall_seconds']:.1f}s on {s['device']}")
    if "fraction_labels_changed" in s:
        print(f"  {label_words(s, result.config.label_noise)}")
    if s["message"]:
        print(f"  {s['message']}")
    return 0


def cmd_demo(args) -> int:
    """``rethinkgen demo``: the randomization test on a small model, its table and figure; returns the exit status."""
    from rethinkgen.experiments.demo import run_demo

    overrides = {k: getattr(args, k) for k in ("dataset", "data_dir", "model", "subset", "test_subset", "epochs", "seed")}
    table, table_path, figure_path = run_demo(args.runs_dir, progress=not args.quiet, **overrides)
    print(table)
    print(f"table:  {table_path}\nfigure: {figure_path}")
    return 0


def cmd_sweep(args) -> int:
    """``rethinkgen sweep``: run a spec file or a preset from ``args`` (the parsed command line); returns the exit status."""
    from rethinkgen.engine import distributed
    from rethinkgen.experiments import presets, sweep
    from rethinkgen.experiments.executors import check_options

    if distributed.from_environment().active:
        raise RethinkgenError("a sweep does not run under torchrun (every process would run every run); "
                              "use `torchrun ... -m rethinkgen run` for one data-parallel run")
    overrides = {k: v for k, v in (("fit_threshold", args.fit_threshold), ("epochs", args.epochs)) if v is not None}
    if (args.spec is None) == (args.preset is None):
        raise RethinkgenError("give either a sweep spec file or --preset NAME (one of: " + ", ".join(PRESETS) + ")")
    if args.spec:
        if any(value is not None for value in (args.seeds, args.models, args.dataset, args.scale)):
            raise RethinkgenError("--seeds, --models, --dataset and --scale apply to presets; put them in the spec file")
        plan = sweep.load_spec(args.spec, {**overrides, **({"data_dir": args.data_dir} if args.data_dir else {})})
    else:
        plan = presets.build(args.preset, dataset=args.dataset, models=args.models, seeds=args.seeds,
                             scale="tiny" if args.scale is None else args.scale, data_dir=args.data_dir, **overrides)
    check_options(args.executor, args.workers, args.runs_per_gpu, args.cpus_per_run, args.address)
    if args.dry_run:  # imports no user model: it lists the runs and estimates what it can
        total, unknown = 0.0, 0
        print(f"sweep {plan.name}: {len(plan.runs)} run(s)")
        for run in plan.runs:
            seconds = sweep.estimate_seconds(run.config)
            total += seconds or 0.0
            unknown += seconds is None
            cost = "cost unknown" if seconds is None else f"~{seconds / 60:7.1f} CPU min"
            try:
                status = (sweep.run_status(args.runs_dir, run.config.run_id()) or {}).get("status", "new")
            except DamagedFile as damaged:
                warn(f"{damaged}; `sweep --restart` trains the run from the start")
                status = sweep.UNREADABLE
            print(f"  {run.config.run_id()}  {status:<11} {run.config.model:<21} {run.label:<40} "
                  f"{run.config.epochs:>4} epochs  {cost}")
        print(f"estimated: at most {total / 3600:.2f} CPU hours on a 2-core CPU (runs that stop at fit take less)"
              + (f"; {unknown} run(s) of a model without a measured speed (your own, or a family member such as mlp-1x64) not counted" if unknown else ""))
        return 0
    outcome = sweep.run_sweep(plan, args.runs_dir, workers=args.workers, retry_failed=args.retry_failed,
                              progress=not args.quiet, executor=args.executor, address=args.address,
                              runs_per_gpu=args.runs_per_gpu, cpus_per_run=args.cpus_per_run,
                              ensemble=args.ensemble, restart=args.restart)
    print("\n".join(outcome.lines()))
    return 1 if outcome.failed else 0


def cmd_report(args) -> int:
    """``rethinkgen report``: write the report of the runs folder; returns the exit status."""
    from rethinkgen.report.document import write_report

    paths = write_report(runs_folder(args), args.report_dir)
    print("\n".join(str(p) for p in paths))
    return 0


def cmd_measures(args) -> int:
    """``rethinkgen measures``: take the complexity measures of stored runs and correlate them; returns the exit status."""
    import time

    from tqdm.auto import tqdm

    from rethinkgen import measures
    from rethinkgen.measures import analysis, runs as stored

    import_modules(args.imports)
    if args.list:
        return print_measures(measures)
    names = measures.resolve(args.only)
    check_device(args.device)
    if not args.no_compute:
        from rethinkgen.engine.trainer import resolve_device

        resolve_device(args.device)  # a device this machine lacks is said once, before any run is touched
    runs_dir = Path(runs_folder(args))
    rows = stored.finished_runs(runs_dir)
    if not rows:
        raise RethinkgenError(f"no completed runs in {runs_dir}")
    problems = []
    if not args.no_compute:
        todo = [row for row in rows if args.recompute or stored.missing(runs_dir / row["run_id"], names)]
        started = time.perf_counter()
        for row in tqdm(todo, disable=args.quiet, desc="measures", unit="run", dynamic_ncols=True):
            try:
                stored.measure_stored_run(runs_dir, row["run_id"], names, args.device, args.recompute)
            except RethinkgenError as error:
                problems.append(str(error))
        print(f"measured {len(todo) - len(problems)} run(s) in {time.perf_counter() - started:.1f} s; "
              f"{len(rows) - len(todo)} already had every measure")
    records = stored.load_records(runs_dir)
    axes, results = analysis.analyse(records, names, {n: measures.get_measure(n).kind for n in names})
    described = ", ".join(axes) or "none (every run has the same settings)"
    print(f"Kendall's tau of each measure with the generalization gap (train - test accuracy) over {len(records)} "
          f"completed run(s); hyperparameter axes: {described}; (runs) = the runs behind each figure")
    headers, body = analysis.table(axes, results)
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in body:
        print("| " + " | ".join(row) + " |")
    for problem in problems:
        print(f"rethinkgen: warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_results(args) -> int:
    """``rethinkgen results``: the runs folder as a table (text, CSV, JSON ...); returns the exit status."""
    from rethinkgen.report import runs_table

    frame = runs_table.runs_table(runs_folder(args), args.where, runs_table.parse_columns(args.columns))
    text = runs_table.write(frame, args.format, args.output)
    sys.stdout.write(text or f"{len(frame)} run(s) written to {args.output}\n")
    return 0
