"""The torch-free name lists in rethinkgen.choices name exactly what the registries hold."""

from rethinkgen import choices, models
from rethinkgen.data import SOURCES
from rethinkgen.experiments import presets


def test_lists_match_the_registries():
    assert choices.DATASETS == tuple(SOURCES)
    assert set(choices.MODELS) == set(models.model_names())
    assert choices.PRESETS == tuple(presets.EPOCHS)
    assert choices.SCALES == tuple(presets.SCALES)
