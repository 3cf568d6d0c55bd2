"""The preset registry: every preset is a module with its runs and its report section, found by name."""

import pytest

from rethinkgen.errors import RethinkgenError
from rethinkgen.experiments import presets
from rethinkgen.experiments.presets import registry
from rethinkgen.experiments.sweep import run_sweep
from rethinkgen.report import Section, by_label, mean_sd
from rethinkgen.report.document import section_of, write_report


def test_every_preset_is_registered_with_its_section_and_budgets():
    for name, preset in presets.PRESETS.items():
        assert preset.name == name and set(preset.epochs) == set(presets.SCALES) == set(preset.models)
        assert section_of(name) is preset.section
        assert preset.section.__module__ == preset.rows.__module__  # runs and section live in one module
    assert section_of("demo") is presets.PRESETS["figure1a"].section  # manifests that name the demo
    assert section_of(None).__name__ == "section_sweep"                # a sweep of a user's


def test_an_unknown_preset_is_refused_in_one_line():
    with pytest.raises(RethinkgenError, match="preset 'figure9'.*figure1a"):
        presets.build("figure9")


def test_a_preset_must_give_every_scale():
    with pytest.raises(RethinkgenError, match="preset 'half': epochs must give every scale .*not tiny"):
        presets.register_preset("half", "", epochs={"tiny": 3}, models=["mlp-1x64"], section=None)(lambda model: [])
    with pytest.raises(RethinkgenError, match="models must give every scale"):
        presets.register_preset("half", "", epochs={"paper": 1, "small": 1, "tiny": 1}, models={"tiny": ["mlp-1x64"]},
                                section=None)(lambda model: [])
    assert "half" not in presets.PRESETS


@pytest.fixture
def own_preset():
    def section(name, runs, out):
        rows = [[label, mean_sd([r.get("test_accuracy") for r in group])] for label, group in by_label(runs).items()]
        return Section(f"Dropout against label noise ({name})", "", [(["setting", "test acc"], rows)])

    @presets.register_preset("dropout-noise", "dropout 0 and 0.5 at label noise 0 and 0.5",
                             epochs={"paper": 100, "small": 60, "tiny": 2}, models=["mlp-1x64"], section=section,
                             fixed_budget=True, settings={"lr": 0.05})
    def rows(model):
        for noise in (0.0, 0.5):
            for dropout in (0.0, 0.5):
                yield (f"noise {noise:g}, dropout {dropout:g}", {"label_noise": noise, "dropout": dropout},
                       {"label_noise": noise, "dropout": dropout})

    yield "dropout-noise"
    del registry.PRESETS["dropout-noise"]


def test_a_preset_of_ones_own_builds_runs_and_reports(own_preset, tmp_path):
    sweep = presets.build(own_preset, subset=64, test_subset=64)
    assert [r.label for r in sweep.runs] == ["noise 0, dropout 0", "noise 0, dropout 0.5", "noise 0.5, dropout 0",
                                             "noise 0.5, dropout 0.5"]
    first = sweep.runs[0].config
    assert (first.epochs, first.lr, first.stop_at_fit, first.dataset) == (2, 0.05, False, "digits")
    assert sweep.runs[3].config.dropout == 0.5 and sweep.runs[3].group == {
        "model": "mlp-1x64", "seed": 0, "label_noise": 0.5, "dropout": 0.5}
    run_sweep(sweep, tmp_path, progress=False)
    write_report(tmp_path, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Dropout against label noise (dropout-noise-digits-tiny)" in markdown
    assert "| noise 0.5, dropout 0.5 | 0." in markdown
