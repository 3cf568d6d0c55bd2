"""The ``rethinkgen`` command line: run, demo, sweep, report, measures, datasets, models."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

from rethinkgen.choices import PRESETS as PRESET_NAMES
from rethinkgen.config import RunConfig, check_device
from rethinkgen.errors import DamagedFile, RethinkgenError, raised, shown, warn

RUN_FLAG_TYPES = {int: int, float: float, str: str}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, each defaulting to 'not given' so a --config file can fill it."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        annotation = hints[f.name]
        base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Union else annotation
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default})" if f.default not in ((), None) \
            else f.metadata["help"]
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        elif base is list:
            parser.add_argument(flag, nargs="+", default=argparse.SUPPRESS, metavar="NAME", help=help_text)
        elif "choices" in f.metadata:
            parser.add_argument(flag, choices=f.metadata["choices"], default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, type=RUN_FLAG_TYPES[base], default=argparse.SUPPRESS,
                                metavar=f.name.upper(), help=help_text)


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    names = {f.name for f in dataclasses.fields(RunConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if "augment" in given:
        given["augment"] = [name for item in given["augment"] for name in item.split(",") if name]
    if args.config:
        return RunConfig.from_file(args.config, given)
    return RunConfig.from_mapping(given)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rethinkgen",
        description="Randomization tests of Zhang et al., 'Understanding deep learning requires rethinking "
                    "generalization' (ICLR 2017).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train one run (resumes it if it was interrupted)",
                              description="Train one run. Every setting is a flag, or a key of --config.")
    run.add_argument("--config", help="YAML or JSON file of settings; flags override it")
    run.add_argument("--out", default="runs", help="runs folder (default: runs)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--restart", action="store_true",
                     help="if the run has not finished (interrupted, failed, or its checkpoint damaged), discard its "
                          "checkpoint and logs and train it from the start; a finished run is left as it is")
    _add_config_flags(run)

    demo = commands.add_parser("demo", help="the main job: six randomizations, a figure and a table",
                               description="Train one model on true labels, label noise 0.5, random labels, "
                                           "shuffled pixels, random pixels and Gaussian inputs.")
    demo.add_argument("--dataset", help="data source (default: digits, bundled)")
    demo.add_argument("--data-dir", help="directory holding the dataset's files")
    demo.add_argument("--model", help="model (default: mlp-1x512)")
    demo.add_argument("--subset", type=int, help="number of training examples (default: all)")
    demo.add_argument("--test-subset", type=int, help="number of test examples (default: all)")
    demo.add_argument("--epochs", type=int, help="epoch budget per run (default: 600; each stops at fit)")
    demo.add_argument("--seed", type=int, help="seed (default: 0)")
    demo.add_argument("--out", default="runs", help="runs folder (default: runs)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    sweep = commands.add_parser("sweep", help="run many runs from a spec file or a preset of the paper",
                                description="Run a sweep: a YAML/JSON spec (base, axes, zip, seeds) or --preset. "
                                            "Finished runs are skipped, interrupted ones resumed.")
    sweep.add_argument("spec", nargs="?", help="sweep spec file (YAML or JSON)")
    sweep.add_argument("--preset", help="one of: " + ", ".join(PRESET_NAMES))
    sweep.add_argument("--scale", help="paper, small or tiny (default: tiny; presets only)")
    sweep.add_argument("--dataset", help="data source (default: cifar10 at paper scale, else digits; presets only)")
    sweep.add_argument("--data-dir", help="directory holding the dataset's files")
    sweep.add_argument("--models", nargs="+", metavar="MODEL", help="models to include (presets only)")
    sweep.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds (default: 0)")
    sweep.add_argument("--fit-threshold", type=float, help="training accuracy that counts as fitted (default: 1.0)")
    sweep.add_argument("--epochs", type=int, help="override every run's epoch budget")
    sweep.add_argument("--out", default="runs", help="runs folder (default: runs)")
    sweep.add_argument("--executor", default="local", help="local (this machine) or ray (a Ray cluster; "
                                                           "pip install 'rethinkgen[ray]') (default: local)")
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
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    report = commands.add_parser("report", help="write report.html, report.md and figures from a runs folder")
    report.add_argument("runs_dir", nargs="?", default="runs", help="runs folder (default: runs)")
    report.add_argument("--out", help="where to write the report (default: RUNS_DIR/report)")

    measure = commands.add_parser(
        "measures", help="compute complexity measures of finished runs and test them against the generalization gap",
        description="Compute the measures each completed run lacks, from its checkpoint and on the data it trained "
                    "on; then print, for each measure, Kendall's tau with the generalization gap across the runs and "
                    "the granulated tau (Jiang et al. 2019: the mean over hyperparameter axes of tau when only that "
                    "axis varies), with the number of runs behind each figure.")
    measure.add_argument("runs_dir", nargs="?", default="runs", help="runs folder (default: runs)")
    measure.add_argument("--only", nargs="+", metavar="NAME", help="compute and test only these measures (default: all)")
    measure.add_argument("--list", action="store_true", help="list the measures with their formulas and exit")
    computing = measure.add_mutually_exclusive_group()
    computing.add_argument("--recompute", action="store_true", help="compute again the measures already stored")
    computing.add_argument("--no-compute", action="store_true", help="test the stored values only; compute nothing")
    measure.add_argument("--import", dest="imports", nargs="+", default=[], metavar="MODULE",
                         help="import these modules first (to register measures of your own)")
    measure.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    measure.add_argument("--quiet", action="store_true", help="no progress bar")

    from rethinkgen.theory import cli as theory_cli

    theory_cli.add_commands(commands)

    table = commands.add_parser("results", help="the runs table (one row per run) as text, CSV, JSON or parquet")
    table.add_argument("runs_dir", nargs="?", default="runs", help="runs folder (default: runs)")
    table.add_argument("--format", default="table", help="table, csv, json or parquet (needs pyarrow) (default: table)")
    table.add_argument("--where", nargs="+", default=[], metavar="KEY=VALUE", help="keep the runs whose column KEY is VALUE")
    table.add_argument("--columns", help="the columns to show, as a,b,c (default: all)")
    table.add_argument("--output", help="write to this file (default: standard output; parquet needs a file)")

    datasets = commands.add_parser("datasets", help="list the data sources, where they were found, and their shapes")
    datasets.add_argument("--data-dir", help="also look in this directory")

    model_list = commands.add_parser("models", help="list the models with their parameter counts")
    model_list.add_argument("--input-shape", default="3,28,28", help="C,H,W (default: 3,28,28, the paper's)")
    model_list.add_argument("--num-classes", type=int, default=10)
    return parser


def cmd_run(args) -> int:
    from rethinkgen.engine import distributed
    from rethinkgen.engine.trainer import train

    config = _config_from_args(args)
    result = train(config, args.out, progress=not args.quiet, log=print if args.quiet else None, restart=args.restart)
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
    from rethinkgen.experiments.demo import run_demo

    overrides = {k: getattr(args, k) for k in ("dataset", "data_dir", "model", "subset", "test_subset", "epochs", "seed")}
    table, table_path, figure_path = run_demo(args.out, progress=not args.quiet, **overrides)
    print(table)
    print(f"table:  {table_path}\nfigure: {figure_path}")
    return 0


def cmd_sweep(args) -> int:
    from rethinkgen.engine import distributed
    from rethinkgen.experiments import presets, sweep
    from rethinkgen.experiments.executors import check_options

    if distributed.from_environment().active:
        raise RethinkgenError("a sweep does not run under torchrun (every process would run every run); "
                              "use `torchrun ... -m rethinkgen run` for one data-parallel run")
    overrides = {k: v for k, v in (("fit_threshold", args.fit_threshold), ("epochs", args.epochs)) if v is not None}
    if (args.spec is None) == (args.preset is None):
        raise RethinkgenError("give either a sweep spec file or --preset NAME (one of: " + ", ".join(PRESET_NAMES) + ")")
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
                status = (sweep.run_status(args.out, run.config.run_id()) or {}).get("status", "new")
            except DamagedFile as damaged:
                warn(f"{damaged}; `sweep --restart` trains the run from the start")
                status = sweep.UNREADABLE
            print(f"  {run.config.run_id()}  {status:<11} {run.config.model:<21} {run.label:<40} "
                  f"{run.config.epochs:>4} epochs  {cost}")
        print(f"estimated: at most {total / 3600:.2f} CPU hours on a 2-core CPU (runs that stop at fit take less)"
              + (f"; {unknown} run(s) of a user's model not counted (cost unknown)" if unknown else ""))
        return 0
    outcome = sweep.run_sweep(plan, args.out, workers=args.workers, retry_failed=args.retry_failed,
                              progress=not args.quiet, executor=args.executor, address=args.address,
                              runs_per_gpu=args.runs_per_gpu, cpus_per_run=args.cpus_per_run,
                              ensemble=args.ensemble, restart=args.restart)
    print("\n".join(outcome.lines()))
    return 1 if outcome.failed else 0


def cmd_report(args) -> int:
    from rethinkgen.report import write_report

    paths = write_report(args.runs_dir, args.out)
    print("\n".join(str(p) for p in paths))
    return 0


def cmd_measures(args) -> int:
    import importlib
    import time

    from tqdm.auto import tqdm

    from rethinkgen import measures
    from rethinkgen.measures import analysis, runs as stored

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise RethinkgenError(f"cannot import {shown(module)}: {error}") from None
        except Exception as error:  # the module's own code raised while it was imported
            raise RethinkgenError(f"importing {shown(module)} raised {raised(error)}") from None
    if args.list:
        for name in measures.measure_names():
            measure = measures.get_measure(name)
            print(f"{name:<34} {measure.kind:<12} {'' if measure.cheap else '(not computed at train time) '}"
                  f"{measure.description}")
        return 0
    names = measures.resolve(args.only)
    check_device(args.device)
    if not args.no_compute:
        from rethinkgen.engine.trainer import resolve_device

        resolve_device(args.device)  # a device this machine lacks is said once, before any run is touched
    runs_dir = Path(args.runs_dir)
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
    from rethinkgen.report import runs_table

    if args.format not in runs_table.FORMATS:  # before reading the runs
        raise RethinkgenError(f"unknown format {shown(args.format)}; allowed: {', '.join(runs_table.FORMATS)}")
    frame = runs_table.runs_table(args.runs_dir, args.where, runs_table.parse_columns(args.columns))
    text = runs_table.write(frame, args.format, args.output)
    sys.stdout.write(text or f"{len(frame)} run(s) written to {args.output}\n")
    return 0


def cmd_datasets(args) -> int:
    from rethinkgen.data import source_status
    from rethinkgen.data.download import check_folder

    if args.data_dir is not None:
        check_folder("--data-dir", Path(args.data_dir))
    rows = source_status(args.data_dir)
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        mark = "found  " if row["found"] else "missing"
        print(f"{row['name']:<{width}}  {mark}  {row['where']}\n{'':<{width}}           {row['shape'] or row['description']}")
    return 0


def cmd_models(args) -> int:
    import torch

    from rethinkgen import models

    try:
        shape = tuple(int(s) for s in args.input_shape.split(","))
    except ValueError:
        raise RethinkgenError(f"input shape {shown(args.input_shape)} must be C,H,W, e.g. 3,28,28") from None
    models.check_input(shape, args.num_classes)
    print(f"{'model':<22}{'parameters':>12}  {'lr':>5}  description (input {'x'.join(map(str, shape))})")
    for name in models.model_names():
        try:  # on the meta device: counts parameters without allocating them
            with torch.device("meta"):
                count = f"{models.count_parameters(models.create_model(name, shape, args.num_classes)):,}"
        except RethinkgenError as error:  # e.g. inception-v3 without torchvision, or on images below 75x75
            count, why = "-", f" [{error}]"
        else:
            why = ""
        print(f"{name:<22}{count:>12}  {models.default_lr(name):>5g}  {models.describe(name)}{why}")
    return 0


COMMANDS = {"run": cmd_run, "demo": cmd_demo, "sweep": cmd_sweep, "report": cmd_report, "measures": cmd_measures,
            "results": cmd_results, "datasets": cmd_datasets, "models": cmd_models}


def main(argv: list[str] | None = None) -> int:
    from rethinkgen.theory.cli import COMMANDS as THEORY_COMMANDS

    args = build_parser().parse_args(argv)
    try:
        return {**COMMANDS, **THEORY_COMMANDS}[args.command](args)
    except RethinkgenError as error:
        print(f"rethinkgen: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rethinkgen: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
