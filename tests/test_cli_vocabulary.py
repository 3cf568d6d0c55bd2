"""One vocabulary: every command spells a concept the same way, enumerations are choices, old spellings still
work (with one warning line), errors are one line, and the help imports no torch."""

import argparse
import dataclasses
import subprocess
import sys

import pytest

from rethinkgen import __version__
from rethinkgen.choices import DATASETS, PRESETS, SCALES
from rethinkgen.cli import build_parser, main
from rethinkgen.cli.theory import (
    FACTORIZATION_CHOICES,
    FEATURE_CHOICES,
    KERNEL_CHOICES,
    SOLVER_CHOICES,
)
from rethinkgen.config import RunConfig
from rethinkgen.errors import SHOWN_LENGTH

# concept (the dest a flag fills) -> its one spelling
CANONICAL = {"runs_dir": "--runs", "subset": "--subset", "test_subset": "--test-subset",
             "label_noise": "--label-noise", "dataset": "--dataset", "data_dir": "--data-dir", "model": "--model",
             "models": "--models", "seed": "--seed", "seeds": "--seeds", "epochs": "--epochs", "quiet": "--quiet",
             "device": "--device", "scale": "--scale", "config": "--config", "imports": "--import",
             "report_dir": "--report-dir"}
OLD_FLAGS = {"--out", "--n", "--n-test", "--labels", "--list", "--runs-dir"}
# dest -> the values every command offers for it
ENUMERATIONS = {"preset": PRESETS, "scale": SCALES, "executor": ("local", "ray"), "kernel": KERNEL_CHOICES,
                "features": FEATURE_CHOICES, "solver": SOLVER_CHOICES, "factorization": FACTORIZATION_CHOICES,
                "augment": ("crop", "flip", "rotate", "jitter"),
                "inputs": ("original", "shuffled-pixels", "random-pixels", "gaussian"),
                "measures": ("none", "cheap", "all"),
                **{f.name: f.metadata["choices"] for f in dataclasses.fields(RunConfig) if "choices" in f.metadata}}


def listed_commands(parser, prefix=()):
    """(command words, parser) of the top level and every command the help lists, nested groups included."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                yield from listed_commands(action.choices[listed.dest], prefix + (listed.dest,))


def visible_options(parser):
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]


COMMANDS = list(listed_commands(build_parser()))


def test_the_listed_commands_are_grouped():
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"run", "demo", "sweep", "report", "measures", "theory", "list"} <= names
    for theory in ("memorize", "kernel", "minnorm", "rademacher", "stability"):
        assert f"theory {theory}" in names and theory not in names
    for listing in ("models", "datasets", "presets", "measures"):
        assert f"list {listing}" in names
    assert "models" not in names and "datasets" not in names


def test_every_concept_has_one_spelling_in_every_command():
    spellings = {}
    for words, parser in COMMANDS:
        for action in visible_options(parser):
            assert not OLD_FLAGS & set(action.option_strings), (words, action.option_strings)
            if action.dest in CANONICAL:
                assert action.option_strings == [CANONICAL[action.dest]], (words, action.option_strings)
            spellings.setdefault(action.dest, set()).add(tuple(action.option_strings))
    assert {dest: s for dest, s in spellings.items() if len(s) > 1} == {}
    for dest in ("runs_dir", "subset", "test_subset", "label_noise"):
        assert dest in spellings  # the concepts the map checks are really there


def test_every_enumeration_is_an_argparse_choice():
    seen = set()
    for words, parser in COMMANDS:
        for action in visible_options(parser):
            if action.dest in ENUMERATIONS:
                choices = action.choices if action.choices is not None else getattr(action.type, "choices", None)
                assert tuple(choices) == tuple(ENUMERATIONS[action.dest]), (words, action.dest)
                seen.add(action.dest)
            if action.dest == "dataset" and words[:1] == ("theory",):
                assert tuple(action.choices) == DATASETS  # the theory commands take only the named sources
    assert seen == set(ENUMERATIONS)


def test_old_flags_are_hidden_from_the_help():
    for words, parser in COMMANDS:
        help_text = parser.format_help()
        for old in ("--out ", "--n ", "--labels", "--n-test"):
            assert old not in help_text, (words, old)


@pytest.mark.parametrize("old, new", [
    (["theory", "minnorm", "--out", "R"], ["theory", "minnorm", "--runs", "R"]),
    (["minnorm", "--runs", "R"], ["theory", "minnorm", "--runs", "R"]),
    (["kernel", "--n", "30", "--n-test", "20", "--out", "R"],
     ["theory", "kernel", "--subset", "30", "--test-subset", "20", "--runs", "R"]),
    (["theory", "kernel", "--table3", "--labels", "true", "random"],
     ["theory", "kernel", "--table3", "--label-noise", "0", "1"]),
    (["memorize", "--labels", "true"], ["theory", "memorize", "--label-noise", "0"]),
    (["rademacher", "--n", "40"], ["theory", "rademacher", "--subset", "40"]),
    (["stability", "--n", "40"], ["theory", "stability", "--subset", "40"]),
    (["datasets", "--data-dir", "D"], ["list", "datasets", "--data-dir", "D"]),
    (["models", "--input-shape", "1,8,8"], ["list", "models", "--input-shape", "1,8,8"]),
    (["run", "--out", "R"], ["run", "--runs", "R"]),
    (["demo", "--out", "R"], ["demo", "--runs", "R"]),
    (["sweep", "spec.yaml", "--out", "R"], ["sweep", "spec.yaml", "--runs", "R"]),
    (["report", "--out", "W"], ["report", "--report-dir", "W"]),
])
def test_old_spellings_parse_as_the_new_ones(old, new):
    parser = build_parser()
    ignored = ("old_command", "new_command", "command", "theory_command", "list_command")
    parsed_old = {k: v for k, v in vars(parser.parse_args(old)).items() if k not in ignored}
    parsed_new = {k: v for k, v in vars(parser.parse_args(new)).items() if k not in ignored}
    assert parsed_old == parsed_new  # the same settings, and the same function to run them


def test_an_old_spelling_warns_once_on_one_line(tmp_path, capsys):
    from rethinkgen import errors

    errors._warned.clear()
    for _ in range(2):
        assert main(["minnorm", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("rethinkgen: warning: --out is deprecated; use --runs\n") == 1
    assert err.count("rethinkgen: warning: `rethinkgen minnorm` is deprecated; use `rethinkgen theory minnorm`\n") == 1
    assert err.count("\n") == 2 and (tmp_path / "theory" / "sgd-min-norm.png").is_file()


def test_old_runs_folder_argument_of_report_and_measures(tmp_path, capsys):
    from rethinkgen import errors

    errors._warned.clear()
    assert main(["report", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "the RUNS_DIR argument is deprecated; use --runs RUNS_DIR" in err and str(tmp_path / "none") in err
    assert main(["measures", str(tmp_path / "a"), "--runs", str(tmp_path / "b")]) == 2
    assert "two runs folders given" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"rethinkgen {__version__}\n"


def test_list_presets_names_every_preset(capsys):
    assert main(["list", "presets"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert listed == list(PRESETS)


@pytest.mark.parametrize("command", [["list", "presets"], ["list", "measures"]])
def test_output_into_a_closed_pipe_ends_quietly(command):
    """``rethinkgen list presets | head -1``: the reader goes away; no traceback, the shell's status 141."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    done = subprocess.run([sys.executable, "-m", "rethinkgen", *command], stdout=write_end, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""


def test_list_measures_and_the_old_measures_list_agree(capsys):
    from rethinkgen import errors

    assert main(["list", "measures"]) == 0
    new = capsys.readouterr().out
    errors._warned.clear()
    assert main(["measures", "--list"]) == 0
    old = capsys.readouterr()
    assert old.out == new and "frobenius" in new
    assert old.err == "rethinkgen: warning: --list is deprecated; use `rethinkgen list measures`\n"


def test_print_config_round_trips_through_config(tmp_path, capsys):
    flags = ["--label-noise", "0.3", "--model", "mlp-3x512", "--augment", "crop,flip", "rotate", "--epochs", "7",
             "--inputs", "shuffled-pixels", "--no-stop-at-fit", "--subset", "500"]
    assert main(["run", "--print-config", *flags, "--runs", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert not (tmp_path / "runs").exists()  # nothing trained
    path = tmp_path / "printed.yaml"
    path.write_text(printed)
    assert main(["run", "--config", str(path), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    from_flags = RunConfig.from_mapping({"label_noise": 0.3, "model": "mlp-3x512", "augment": ["crop", "flip", "rotate"],
                                         "epochs": 7, "inputs": "shuffled-pixels", "subset": 500})
    loaded = RunConfig.from_file(path)
    assert loaded.run_id() == from_flags.run_id() and loaded == from_flags.resolved()
    assert "label_noise: 0.3" in printed and "lr: 0.01" in printed  # resolved: the model's learning rate


LONG = "x" * 5000


@pytest.mark.parametrize("argv", [
    ["run", "--inputs", LONG], ["run", "--epochs", LONG], ["run", "--augment", "crop," + LONG], [LONG],
    ["theory", "kernel", "--kernel", LONG], ["list", "presets", LONG], ["run", "--model", LONG, "--quiet"],
])
def test_errors_are_one_short_line_with_status_2(capsys, tmp_path, argv):
    assert main(argv + (["--runs", str(tmp_path)] if argv[0] == "run" else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("rethinkgen: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "x" * SHOWN_LENGTH not in err and "..." in err and len(err) < 600


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["theory", "kernel", "--help"], ["list", "--help"]])
def test_help_answers_without_importing_torch(argv):
    code = (f"import sys\nfrom rethinkgen.cli import main\ncode = main({argv!r})\n"
            "assert code == 0, code\nassert 'torch' not in sys.modules, 'torch imported'\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "usage: rethinkgen" in completed.stdout


def test_list_presets_gives_the_models_of_each_scale_where_they_differ(capsys):
    assert main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    assert "models at paper: alexnet-small inception-small" in out and "models at tiny: mlp-1x2 mlp-1x4" in out
    assert "models: inception-small alexnet-small mlp-1x512" in out and "paper small tiny" not in out
