"""The torch-free name lists in rethinkgen.choices name exactly what the registries hold."""

from rethinkgen import choices, models
from rethinkgen.data import SOURCES
from rethinkgen.experiments import presets


def test_lists_match_the_registries():
    assert choices.DATASETS == tuple(SOURCES)
    assert set(choices.MODELS) == set(models.model_names())
    assert set(choices.MODEL_FAMILIES) == set(models.family_names())
    assert sorted(choices.PRESETS) == sorted(presets.PRESETS)
    assert choices.SCALES == tuple(presets.SCALES)


def test_learning_rates_known_without_torch_match_the_registry():
    assert choices.MODEL_LRS == {name: models.default_lr(name) for name in models.model_names()}
