"""Model registry: the paper's networks by name, plus any user model given as ``package.module:factory``.

Every factory takes ``(input_shape, num_classes, **options)`` and returns an ``nn.Module`` mapping a
float batch ``[N, C, H, W]`` to logits ``[N, num_classes]``.
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import Callable

import torch
from torch import nn

from rethinkgen.errors import RethinkgenError, raised, shown
from rethinkgen.registry import (  # the registry's interface, here too  # noqa: F401
    MODELS as _REGISTRY,
    USER_MODEL as USER_MODEL,
    USER_MODEL_DEFAULT_LR as USER_MODEL_DEFAULT_LR,
    ModelEntry as ModelEntry,
    check_name as check_name,
    default_lr as default_lr,
    entry as entry,
    family_names as family_names,
    model_names as model_names,
    register_family as register_family,
    register_model as register_model,
)

MAX_INPUT_VALUES = 3 * 4096 * 4096  # values per image: 4096x4096 RGB (ImageNet models take 3x299x299)
MAX_CLASSES = 1_000_000


class ModelFactoryError(RethinkgenError):
    """A user's model factory (or its network's forward pass) raised: the run fails, its settings are not
    at fault in a way rethinkgen could have checked."""


def describe(name: str) -> str:
    """The one-line description model ``name`` was registered with.

    Args:
        name: a registered model name.
    """
    return entry(name).description


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what the paper's tables count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def get_factory(name: str) -> Callable[..., nn.Module]:
    """The factory of model ``name``: the registry's, or a user's ``package.module:factory`` (imported now)."""
    known = entry(name)
    return known.factory if known else _user_factory(name)


def _user_factory(reference: str) -> Callable[..., nn.Module]:
    module_name, _, attribute = check_name(reference).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RethinkgenError(f"model {shown(reference)}: cannot import {shown(module_name)} ({error})") from None
    except Exception as error:  # the module's own code raised while it was imported
        raise ModelFactoryError(f"model {shown(reference)}: importing {module_name} raised {raised(error)}") \
            from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise RethinkgenError(f"model {shown(reference)}: {module_name} has no callable {shown(attribute)}")
    return factory


def create_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **options: object) -> nn.Module:
    """Build model ``name`` for images of ``input_shape`` (C, H, W) and check that it can take them.

    Args:
        name: a registered model name (``rethinkgen list models``) or ``module:factory`` for your own.
        input_shape: one image's shape, (C, H, W).
        num_classes: the number of outputs.
        **options: the factory's own options, e.g. ``dropout``; one it does not take is refused.

    >>> create_model("mlp-1x512", (3, 28, 28), 10)   # 1,209,866 parameters, as in the paper
    """
    factory = get_factory(name)
    check_input(input_shape, num_classes)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    allowed = [p for p in params if p not in ("input_shape", "num_classes")]
    unknown = [key for key in options if key not in allowed and not takes_any]
    if unknown:
        raise RethinkgenError(
            f"model {shown(name)} does not take option(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}")
    try:
        model = factory(input_shape=tuple(int(s) for s in input_shape), num_classes=num_classes, **options)
    except RethinkgenError:
        raise
    except Exception as error:
        if entry(name) is None:
            raise ModelFactoryError(f"model {shown(name)}: its factory raised {raised(error)}") from None
        raise RethinkgenError(f"model {shown(name)} cannot be built for input shape {tuple(input_shape)} and "
                              f"{num_classes} classes: {raised(error)}") from None
    if not isinstance(model, nn.Module):
        raise ModelFactoryError(f"model {shown(name)}: its factory returned {type(model).__name__}, "
                                "not a torch.nn.Module")
    _check_shape(model, name, tuple(input_shape), num_classes)
    return model


def create_run_model(name: str, input_shape: tuple[int, int, int], num_classes: int,
                     dropout: float = 0.0) -> nn.Module:
    """``create_model`` with a run's dropout, passed only when it is on (a factory of your own that takes no
    ``dropout`` builds for runs without it).

    Args:
        name: a registered model name or ``module:factory``.
        input_shape: one image's shape, (C, H, W).
        num_classes: the number of outputs.
        dropout: the run's dropout probability (0: off).
    """
    return create_model(name, input_shape, num_classes, **({"dropout": dropout} if dropout else {}))


def check_input(input_shape, num_classes: int) -> None:
    """Refuse an input shape that is not three positive sizes or holds more than MAX_INPUT_VALUES values,
    and a class count outside 2..MAX_CLASSES."""
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise RethinkgenError(f"input shape {tuple(input_shape)} must be three positive sizes (C, H, W)")
    if math.prod(input_shape) > MAX_INPUT_VALUES:
        raise RethinkgenError(f"input shape {tuple(input_shape)} holds {math.prod(input_shape):,} values per image; "
                              f"the limit is {MAX_INPUT_VALUES:,} (3x4096x4096)")
    if not 2 <= num_classes <= MAX_CLASSES:
        raise RethinkgenError(f"num_classes {num_classes} must be in 2..{MAX_CLASSES:,}")


def _check_shape(model: nn.Module, name: str, input_shape, num_classes: int) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except RuntimeError as error:  # what torch raises for a shape a layer cannot take
        first_line = str(error).strip().splitlines()[0]
        raise RethinkgenError(
            f"model {shown(name)} cannot take input shape {tuple(input_shape)}: {first_line}") from None
    except Exception as error:  # anything else a user's forward pass raises
        raise ModelFactoryError(f"model {shown(name)}: its forward pass on input shape {tuple(input_shape)} raised "
                                f"{raised(error)}") from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (2, num_classes):
        raise RethinkgenError(
            f"model {shown(name)} gives output shape {tuple(out.shape[1:])} for input {tuple(input_shape)}; "
            f"expected ({num_classes},)")


# the built-in models register themselves on import
from rethinkgen.models import alexnet, cnn5, inception, inception_v3, mlp  # noqa: E402,F401
