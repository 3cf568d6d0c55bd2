"""Complexity measures of trained networks, to be tested against their generalization gaps.

Each measure is a small function ``measure(context) -> float`` registered by name with
``@register_measure``; it reads what it needs from a ``MeasureContext`` (the trained network, the data
it trained on, its initial weights, its summary). Following Jiang et al. (2019), "Fantastic
generalization measures and where to find them", every measure is oriented as a *complexity*: a larger
value should mean a larger generalization gap, so a good measure has a positive rank correlation with it.

What the measures see (decided once, for every measure):

- **The evaluation-mode function.** Batch norm layers that directly follow a conv or linear layer are
  folded into it (w' = w·γ/√(var+ε), b' = (b − mean)·γ/√(var+ε) + β, with the running statistics), so
  a BN network such as ``inception-small`` is measured as the plain conv/ReLU network it computes at
  test time; its raw conv weights are scale-free under BN and their norms would mean nothing. A BN
  layer that cannot be folded makes the weight-based measures unavailable for that model.
- **Biases** are left out of the layer norms (Frobenius, spectral), count as edges from a constant unit
  in the path norm, and are part of the parameter vector for the distance from initialization and the
  flatness perturbations.
- A measure that cannot be computed for a run (no initial weights, a non-positive margin, a run that
  never fitted) raises ``MeasureUnavailable`` with the reason, which is stored with the run.

Add your own::

    import math
    from rethinkgen.measures import register_measure

    @register_measure("log_weight_count", kind="size")
    def log_weight_count(context):
        '''log of the number of weights of the conv and linear layers.'''
        return math.log(sum(w.numel() for w in context.weights))

and import the module before ``rethinkgen measures --runs RUNS_DIR --import mymodule`` computes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import torch
from torch import nn

from rethinkgen.choices import MEASURE_KINDS as KINDS, MEASURE_SETS
from rethinkgen.engine.evaluate import predict
from rethinkgen.errors import RethinkgenError, choice_error

MARGIN_PERCENTILE = 10  # Jiang et al.: the 10th percentile of the training margins, robust to a few outliers


class MeasureUnavailable(Exception):
    """This measure does not apply to this run; the message says why."""


@dataclass(frozen=True)
class Measure:
    """A registered complexity measure.

    Args:
        name: its registry name.
        function: ``function(context) -> float``; its docstring's first paragraph is the measure's description.
        kind: its family (one of ``KINDS``).
        cheap: computed at the end of every run by default (the rest, e.g. flatness, on request).
    """

    name: str
    function: Callable[["MeasureContext"], float]
    kind: str
    cheap: bool  # computed at the end of every run by default; the rest (flatness) on request

    @property
    def description(self) -> str:
        """The docstring's first paragraph on one line: the formula."""
        return " ".join((self.function.__doc__ or "").strip().split("\n\n")[0].split())


_REGISTRY: dict[str, Measure] = {}


def register_measure(name: str, kind: str = "user", cheap: bool = True):
    """Decorator that adds ``function(context) -> float`` to the registry under ``name``.

    Args:
        name: the measure's registry name.
        kind: its family (one of ``KINDS``).
        cheap: computed at the end of every run by default.
    """
    if kind not in KINDS:
        raise choice_error("measure kind", kind, KINDS)

    def decorate(function):
        _REGISTRY[name] = Measure(name, function, kind, cheap)
        return function
    return decorate


def measure_names(cheap_only: bool = False) -> list[str]:
    """The registered measures' names, in registration order.

    Args:
        cheap_only: only those computed at the end of every run by default.
    """
    return [name for name, m in _REGISTRY.items() if m.cheap or not cheap_only]


def get_measure(name: str) -> Measure:
    """The registered measure ``name``; one error naming the allowed ones if there is none.

    Args:
        name: a measure's registry name.
    """
    if name not in _REGISTRY:
        raise choice_error("measure", name, list(_REGISTRY))
    return _REGISTRY[name]


def resolve(names: list[str] | None = None, which: str = "all") -> list[str]:
    """Check ``names`` (default: the ``which`` set, 'all', 'cheap' or 'none') and return them in order.

    Args:
        names: measure names (None: the ``which`` set).
        which: ``all``, ``cheap`` or ``none``.
    """
    if names is None:
        if which not in MEASURE_SETS:
            raise choice_error("measure set", which, MEASURE_SETS)
        return [] if which == "none" else measure_names(cheap_only=which == "cheap")
    return [get_measure(name).name for name in names]




@dataclass
class MeasureContext:
    """What a measure may read. Everything derived (the folded network, the margins) is computed once.

    ``x_train``/``y_train`` are the preprocessed training images and the labels the run trained on (its
    randomized labels); ``summary`` is the run's summary (steps to fit, ...); ``initial_state`` is the
    state dict the run started from, or None; ``settings`` overrides the flatness settings; ``train_logits``
    are the model's logits on ``x_train`` if already computed (the trainer's last evaluation), else None.
    """

    model: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    summary: dict = field(default_factory=dict)
    initial_state: dict | None = None
    batch_size: int = 1024
    settings: dict = field(default_factory=dict)
    train_logits: torch.Tensor | None = None

    @cached_property
    def network(self) -> nn.Module:
        """The trained network in eval mode with its batch norm folded in (a copy)."""
        return network_views.fold_batch_norm(self.model)

    @cached_property
    def weights(self) -> list[torch.Tensor]:
        """The weight tensors of the conv and linear layers of ``network``, in float64, biases excluded."""
        layers = [m for m in self.network.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
        if not layers:
            raise MeasureUnavailable("the network has no conv or linear layers")
        return [layer.weight.detach().double().cpu() for layer in layers]

    @cached_property
    def spectral_norms(self) -> list[float]:
        """Each weight's largest singular value (computed once, shared by the measures that use it)."""
        return [norms.spectral_norm(w) for w in self.weights]

    @cached_property
    def margins(self) -> np.ndarray:
        """Per training example: the logit of its (trained) label minus the largest other logit."""
        logits = self.train_logits if self.train_logits is not None else \
            predict(self.model, self.x_train, self.batch_size, plan=False)
        logits = logits.double()
        true = logits.gather(1, self.y_train[:, None]).squeeze(1)
        others = logits.scatter(1, self.y_train[:, None], -math.inf).max(1).values
        return (true - others).cpu().numpy()

    @property
    def margin(self) -> float:
        """The 10th-percentile training margin (numpy's linear interpolation); must be positive."""
        value = float(np.percentile(self.margins, MARGIN_PERCENTILE))
        if not value > 0:
            raise MeasureUnavailable(f"the {MARGIN_PERCENTILE}th-percentile margin is {value:.3g} <= 0: the network "
                                     f"misclassifies more than {MARGIN_PERCENTILE}% of its training examples")
        return value

    def setting(self, name: str, default: object) -> object:
        """A measure setting given for this context, else ``default``.

        Args:
            name: the setting (e.g. a key of ``measures.flatness.DEFAULTS``).
            default: its value when it was not given.
        """
        return self.settings.get(name, default)


def compute(context: MeasureContext, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Compute ``names``; return (values, reasons for those unavailable). One failing measure spoils no other.

    Args:
        context: the trained network, its data and its summary.
        names: the measures to compute.
    """
    values, unavailable = {}, {}
    for name in names:
        measure = get_measure(name)
        try:
            value = float(measure.function(context))
        except MeasureUnavailable as reason:
            unavailable[name] = str(reason)
            continue
        except RethinkgenError:
            raise
        except Exception as error:  # a broken (e.g. user) measure is recorded, not allowed to stop the others
            unavailable[name] = f"failed: {type(error).__name__}: {error}"
            continue
        if math.isfinite(value):
            values[name] = value
        else:
            unavailable[name] = f"not finite ({value})"
    return values, unavailable


# the built-in measures register themselves on import (after the names above, which they import)
from rethinkgen.measures import (  # noqa: E402,F401
    flatness,
    network as network_views,  # noqa: E402
    norms,
    optimization,
)
