"""Model registry: the paper's networks by name, plus any user model given as ``package.module:factory``.

Every factory takes ``(input_shape, num_classes, **options)`` and returns an ``nn.Module`` mapping a
float batch ``[N, C, H, W]`` to logits ``[N, num_classes]``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from rethinkgen.errors import RethinkgenError, choice_error

USER_MODEL_DEFAULT_LR = 0.01  # for user models, which the paper says nothing about


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    default_lr: float
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, default_lr: float, description: str):
    """Decorator that adds a factory to the registry under ``name``."""
    def decorate(factory):
        _REGISTRY[name] = ModelEntry(name, factory, default_lr, description)
        return factory
    return decorate


def model_names() -> list[str]:
    return list(_REGISTRY)


def default_lr(name: str) -> float:
    """The paper's initial learning rate for the model (App. A)."""
    if name in _REGISTRY:
        return _REGISTRY[name].default_lr
    _user_factory(name)  # validates the reference
    return USER_MODEL_DEFAULT_LR


def describe(name: str) -> str:
    return _REGISTRY[name].description


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what the paper's tables count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _user_factory(reference: str) -> Callable[..., nn.Module]:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise choice_error("model", reference, model_names() + ["package.module:factory"])
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RethinkgenError(f"model {reference!r}: cannot import {module_name!r} ({error})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise RethinkgenError(f"model {reference!r}: {module_name} has no callable {attribute!r}")
    return factory


def create_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **options) -> nn.Module:
    """Build model ``name`` for images of ``input_shape`` (C, H, W) and check that it can take them.

    >>> create_model("mlp-1x512", (3, 28, 28), 10)   # 1,209,866 parameters, as in the paper
    """
    factory = _REGISTRY[name].factory if name in _REGISTRY else _user_factory(name)
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise RethinkgenError(f"input shape {tuple(input_shape)} must be three positive sizes (C, H, W)")
    if num_classes < 2:
        raise RethinkgenError(f"num_classes {num_classes} must be at least 2")
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    allowed = [p for p in params if p not in ("input_shape", "num_classes")]
    unknown = [key for key in options if key not in allowed and not takes_any]
    if unknown:
        raise RethinkgenError(
            f"model {name!r} does not take option(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
    model = factory(input_shape=tuple(int(s) for s in input_shape), num_classes=num_classes, **options)
    _check_shape(model, name, tuple(input_shape), num_classes)
    return model


def _check_shape(model: nn.Module, name: str, input_shape, num_classes: int) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise RethinkgenError(
            f"model {name!r} cannot take input shape {tuple(input_shape)}: {first_line}") from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (2, num_classes):
        raise RethinkgenError(
            f"model {name!r} gives output shape {tuple(out.shape[1:])} for input {tuple(input_shape)}; "
            f"expected ({num_classes},)")


# the built-in models register themselves on import
from rethinkgen.models import alexnet, inception, inception_v3, mlp  # noqa: E402,F401
