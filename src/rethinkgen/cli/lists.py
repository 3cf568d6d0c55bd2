"""The listings of ``rethinkgen``: ``rethinkgen list models|datasets|presets|measures``."""

from __future__ import annotations

from pathlib import Path

from rethinkgen.errors import RethinkgenError, raised, shown


def _add_models(parser) -> None:
    parser.add_argument("--input-shape", default="3,28,28", help="C,H,W (default: 3,28,28, the paper's)")
    parser.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")


def _add_datasets(parser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="also look in this directory")
    parser.add_argument("--dataset", dest="own", action="append", default=[], metavar="PATH",
                        help="also show this data of your own (an .npz file, or hf:NAME / hf:PATH): its shape and "
                             "the data hash its runs' ids cover; may be repeated")


def _add_measures(parser) -> None:
    parser.add_argument("--import", dest="imports", nargs="+", default=[], metavar="MODULE",
                        help="import these modules first (to list measures of your own)")


def _commands() -> dict:
    """name -> (one-line help, function adding its flags, function running it)."""
    return {
        "models": ("the models with their parameter counts and learning rates", _add_models, cmd_models),
        "datasets": ("the data sources, where they were found, and their shapes", _add_datasets, cmd_datasets),
        "presets": ("the paper's experiments that `rethinkgen sweep --preset NAME` runs", None, cmd_presets),
        "measures": ("the complexity measures with their formulas", _add_measures, cmd_measures),
    }


def add_commands(commands) -> None:
    """``rethinkgen list WHAT`` on the top-level sub-command group; ``datasets`` and ``models`` also under their
    old top-level names, hidden."""
    listing = commands.add_parser("list", help="list the models, datasets, presets or measures",
                                  description="List what a command can be given.")
    group = listing.add_subparsers(dest="list_command", required=True, metavar="WHAT")
    for name, (help_text, add, handler) in _commands().items():
        parser = group.add_parser(name, help=help_text, description=f"List {help_text}.")
        if add is not None:
            add(parser)
        parser.set_defaults(handler=handler)
    for name in ("datasets", "models"):
        help_text, add, handler = _commands()[name]
        old = commands.add_parser(name, description=f"List {help_text}.")  # no help: not listed
        add(old)
        old.set_defaults(handler=handler, old_command=name, new_command=f"list {name}")


def import_modules(names: list[str]) -> None:
    """Import the modules given with --import (measures of a user's own register themselves)."""
    import importlib

    for module in names:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise RethinkgenError(f"cannot import {shown(module)}: {error}") from None
        except Exception as error:  # the module's own code raised while it was imported
            raise RethinkgenError(f"importing {shown(module)} raised {raised(error)}") from None


def print_measures(measures) -> int:
    """List the registered measures (``measures``: the rethinkgen.measures module) with their formulas."""
    for name in measures.measure_names():
        measure = measures.get_measure(name)
        print(f"{name:<34} {measure.kind:<12} {'' if measure.cheap else '(not computed at train time) '}"
              f"{measure.description}")
    return 0


def cmd_datasets(args) -> int:
    """``rethinkgen list datasets``: each source, whether its files are here, and where; returns the exit status."""
    from rethinkgen.data import source_status
    from rethinkgen.data.download import check_folder

    if args.data_dir is not None:
        check_folder("--data-dir", Path(args.data_dir))
    rows = source_status(args.data_dir)
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        mark = "found  " if row["found"] else "missing"
        print(f"{row['name']:<{width}}  {mark}  {row['where']}\n{'':<{width}}           {row['shape'] or row['description']}")
    for name in args.own:
        _print_own(name)
    return 0


def _print_own(name: str) -> None:
    """One dataset of the user's own: where it is, its shape and its data hash (refused in one line when it
    cannot be read)."""
    from rethinkgen.data import arrays, huggingface

    if huggingface.is_hf(name):
        dataset, data_hash = huggingface.load_hf(name, {}, None)
    elif arrays.is_npz(name):
        dataset, data_hash = arrays.read_npz(name)
    else:
        raise RethinkgenError(f"--dataset {shown(name)} is not an .npz file or hf:NAME (the built-in sources are "
                              "listed anyway)")
    print(f"{name}  found  {dataset.describe().split(': ', 1)[1]}\n    data hash {data_hash}")


def cmd_models(args) -> int:
    """``rethinkgen list models``: each model with its parameter count and learning rate; returns the exit status."""
    import torch  # here, not at the top: `rethinkgen --help` imports no torch

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
    print("families (the size in the name):")
    for family, example in (("mlp-DxW", "mlp-1x64"), ("cnn5-K", "cnn5-16")):
        print(f"{family:<22}{'':>12}  {models.default_lr(example):>5g}  {models.describe(example)} "
              f"(e.g. {example})")
    return 0


def cmd_presets(args) -> int:
    """``rethinkgen list presets``: each preset, what it reproduces and its models; returns the exit status."""
    from rethinkgen.choices import PRESETS
    from rethinkgen.experiments import presets

    width = max(map(len, PRESETS))
    for name in PRESETS:  # the paper's order
        preset = presets.get_preset(name)
        print(f"{name:<{width}}  {preset.description}")
        by_scale = {scale: " ".join(models) for scale, models in preset.models.items()}
        if len(set(by_scale.values())) == 1:
            print(f"{'':<{width}}  models: {by_scale['tiny']}")
        else:
            for scale, names in by_scale.items():
                print(f"{'':<{width}}  models at {scale}: {names}")
    return 0


def cmd_measures(args) -> int:
    """``rethinkgen list measures``: each complexity measure with its kind and formula; returns the exit status."""
    from rethinkgen import measures

    import_modules(args.imports)
    return print_measures(measures)
