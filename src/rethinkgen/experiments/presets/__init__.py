"""The paper's experiments, and two that followed it, as presets: one module per figure or table, each
with its runs, its section of the report and the paper's numbers, registered by name.

``build(name, scale=...)`` makes the sweep of one (see ``registry``); ``rethinkgen list presets`` lists
them (in the order of ``choices.PRESETS``). The modules:

- ``figure1a``: training loss on true labels and every randomization (Figure 1a);
- ``figure1bc``: time to fit and test error against label noise (Figures 1b and 1c);
- ``table1``, ``table4``: explicit regularizers on true labels and on random labels;
- ``figure2b``: batch normalization's effect on test accuracy against steps;
- ``population``: the ``measures`` preset, a varied population for the complexity measures;
- ``table2``: the ImageNet experiment on an image folder;
- ``memorization`` (Arpit et al. 2017) and ``double_descent`` (Nakkiran et al. 2019).
"""

from __future__ import annotations

from rethinkgen.experiments.presets import (  # noqa: F401  (each module registers its preset)
    double_descent,
    figure1a,
    figure1bc,
    figure2b,
    memorization,
    population,
    table1,
    table2,
    table4,
)
from rethinkgen.experiments.presets.registry import (  # noqa: F401  (the interface, here too)
    PRESETS as PRESETS,
    SCALES as SCALES,
    Preset as Preset,
    build as build,
    get_preset as get_preset,
    register_preset as register_preset,
)
