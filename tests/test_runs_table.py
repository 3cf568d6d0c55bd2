"""rethinkgen results: the runs table as text, CSV, JSON and parquet, filtered and cut; one-line errors."""

import io
import json
import sys

import pandas as pd
import pytest

from rethinkgen import store as results
from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.engine.trainer import train


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for noise in (0.0, 0.5):
        train(RunConfig(dataset="synthetic", epochs=1, label_noise=noise, measures="none"), root, progress=False)
    return root


def test_csv_and_json_hold_the_table_results_load_gives(runs_dir, capsys):
    loaded = results.load(runs_dir)
    assert main(["results", "--runs", str(runs_dir), "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(csv.columns) == list(loaded.columns) and len(csv) == 2
    assert list(csv["test_accuracy"]) == pytest.approx(list(loaded["test_accuracy"]))
    assert main(["results", "--runs", str(runs_dir), "--format", "json", "--columns", "run_id,label_noise,augment"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"run_id": r, "label_noise": n, "augment": []}
                    for r, n in zip(loaded["run_id"], loaded["label_noise"])]


def test_where_filters_and_table_prints_the_chosen_columns(runs_dir, capsys):
    assert main(["results", "--runs", str(runs_dir), "--where", "label_noise=0.5", "status=complete",
                 "--columns", "run_id,label_noise,status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run_id", "label_noise", "status"] and len(lines) == 2
    assert lines[1].split()[1:] == ["0.5", "complete"]
    assert main(["results", "--runs", str(runs_dir), "--where", "dataset=digits"]) == 0
    assert capsys.readouterr().out == "(no runs match)\n"


def test_parquet_and_files(runs_dir, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    target = tmp_path / "runs.parquet"
    assert main(["results", "--runs", str(runs_dir), "--format", "parquet", "--output", str(target)]) == 0
    assert capsys.readouterr().out == f"2 run(s) written to {target}\n"
    back = pd.read_parquet(target)
    assert list(back["run_id"]) == list(results.load(runs_dir)["run_id"])
    assert main(["results", "--runs", str(runs_dir), "--format", "csv", "--output", str(tmp_path / "runs.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 2


@pytest.mark.parametrize("args, message", [
    (["--format", "xml"], "--format: unknown value 'xml'; allowed: table, csv, json, parquet"),
    (["--where", "noise"], "--where 'noise' must be KEY=VALUE"),
    (["--where", "nope=1"], "unknown column 'nope'; allowed: run_id"),
    (["--columns", "run_id,nope"], "unknown column 'nope'"),
    (["--format", "parquet"], "parquet is a binary format: give --output FILE"),
])
def test_bad_input_is_one_line(runs_dir, capsys, args, message):
    assert main(["results", "--runs", str(runs_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rethinkgen: error: ") and message in err and err.count("\n") == 1


def test_without_pyarrow_parquet_says_so_and_a_folder_without_runs_is_refused(runs_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    assert main(["results", "--runs", str(runs_dir), "--format", "parquet", "--output", str(tmp_path / "x.parquet")]) == 2
    assert capsys.readouterr().err.strip() == "rethinkgen: error: the parquet format needs pyarrow: pip install pyarrow"
    assert main(["results", str(tmp_path)]) == 2
    assert "is not a runs folder" in capsys.readouterr().err
