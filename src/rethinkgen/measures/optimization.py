"""Optimization-based measures, read from the run's summary (Jiang et al. 2019, section on optimization)."""

from __future__ import annotations

from rethinkgen.measures import MeasureContext, MeasureUnavailable, register_measure


def _at_fit(context: MeasureContext, key: str) -> float:
    value = context.summary.get(key)
    if value is None:
        raise MeasureUnavailable("the run never reached its fit threshold")
    return value


@register_measure("steps_to_fit", kind="optimization")
def steps_to_fit(context: MeasureContext) -> float:
    """SGD steps until the first epoch-end evaluation at which training accuracy reaches ``fit_threshold``."""
    return _at_fit(context, "steps_to_fit")


@register_measure("loss_at_fit", kind="optimization")
def loss_at_fit(context: MeasureContext) -> float:
    """Training cross-entropy (eval mode, full training set) at that evaluation."""
    return _at_fit(context, "loss_at_fit")
