"""Experiments: what runs to train and where.

- ``sweep``: sweep specs (a base config, axes, seeds) expanded to runs, and the loop that trains them.
- ``executors``: where a sweep's runs train (this process, local worker processes, a Ray cluster).
- ``presets``: the paper's experiments, one each (figure 1a, figure 1b/c, tables 1, 2 and 4, figure 2b).
- ``demo``: the quick randomization test behind ``rethinkgen demo``.

This module imports nothing, so importing one part does not import the rest.
"""
