"""The registries of named things a user can extend (models, presets), free of torch.

``RunConfig`` checks a model name here without importing torch: the paper's networks are known by name
from ``choices`` before their modules (which build torch networks) are imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from rethinkgen.choices import MODEL_FAMILIES, MODEL_LRS
from rethinkgen.errors import choice_error

USER_MODEL_DEFAULT_LR = 0.01  # for user models, which the paper says nothing about
USER_MODEL = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)  # package.module:factory


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Args:
        name: what ``--model`` calls it.
        factory: ``factory(input_shape, num_classes, **options)`` returning the network.
        default_lr: its initial learning rate when the run gives none.
        description: one line for ``rethinkgen models``.
    """

    name: str
    factory: Callable
    default_lr: float
    description: str


MODELS: dict[str, ModelEntry] = {}
FAMILIES: dict[str, Callable[..., ModelEntry]] = {}  # family pattern name -> the entry of a member, by its sizes
_FAMILY_PATTERNS = {family: re.compile(pattern) for family, (pattern, _) in MODEL_FAMILIES.items()}


def register_model(name: str, default_lr: float, description: str):
    """Decorator that adds a model factory to the registry under ``name`` (see ``ModelEntry``).

    Args:
        name: the model's registry name.
        default_lr: its initial learning rate.
        description: one line for ``rethinkgen list models``.
    """
    def decorate(factory):
        MODELS[name] = ModelEntry(name, factory, default_lr, description)
        return factory
    return decorate


def register_family(family: str):
    """Decorator that adds a family of models whose size is in the name (``mlp-DxW``, ``cnn5-K``).

    Args:
        family: the family's key in ``choices.MODEL_FAMILIES``, whose pattern's groups are the sizes.
    The decorated function takes the sizes (as ints) and returns the ``ModelEntry`` of that member.
    """
    def decorate(entry_of):
        FAMILIES[family] = entry_of
        return entry_of
    return decorate


def family_of(name) -> tuple[str, tuple[int, ...]] | None:
    """The family ``name`` belongs to and its sizes (``("mlp-DxW", (1, 64))`` for ``mlp-1x64``), or None;
    imports nothing."""
    for family, pattern in _FAMILY_PATTERNS.items():
        match = pattern.fullmatch(name) if isinstance(name, str) else None
        if match:
            return family, tuple(int(size) for size in match.groups())
    return None


def entry(name: str) -> ModelEntry | None:
    """The entry of ``name``: a registered model or a member of a registered family; None for others.

    Args:
        name: a model name.
    """
    if name in MODELS:
        return MODELS[name]
    member = family_of(name)
    return FAMILIES[member[0]](*member[1]) if member and member[0] in FAMILIES else None


def family_names() -> list[str]:
    """The model families, as their name patterns (``mlp-DxW``, ``cnn5-K``)."""
    return list(MODEL_FAMILIES)


def model_names() -> list[str]:
    """The registered model names (the paper's once ``rethinkgen.models`` is imported), in registration order."""
    return list(MODELS)


def default_lr(name: str) -> float:
    """The initial learning rate of model ``name``: the paper's (App. A) for its networks, the registered one
    for a registered model, ``USER_MODEL_DEFAULT_LR`` for ``package.module:factory``; imports nothing.

    Args:
        name: a model name or ``package.module:factory``.
    """
    if name in MODELS:
        return MODELS[name].default_lr
    check_name(name)
    member = family_of(name)
    return MODEL_FAMILIES[member[0]][1] if member else MODEL_LRS.get(name, USER_MODEL_DEFAULT_LR)


def check_name(name: str) -> str:
    """Refuse a model name that is neither the paper's, nor registered, nor a family's member, nor a
    ``package.module:factory``
    reference; return it. Imports nothing."""
    known = name in MODELS or name in MODEL_LRS or family_of(name)
    if not known and not (isinstance(name, str) and USER_MODEL.fullmatch(name)):
        names = sorted({*MODEL_LRS, *MODELS}) + family_names()
        raise choice_error("model", name, names + ["package.module:factory"])
    return name
