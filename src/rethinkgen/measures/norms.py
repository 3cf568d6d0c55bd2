"""Norm-based measures, their margin-normalized versions, the margin and the parameter count.

W_1..W_d are the weights of the conv and linear layers of the BN-folded network (biases excluded), in
module order, parallel branches included; γ is the 10th-percentile training margin. Products are given
as logarithms so that deep networks neither overflow nor underflow (a logarithm changes no ranking).
References: Bartlett et al. 2017 (spectral), Neyshabur et al. 2015 and 2017 (Frobenius, path norm),
Nagarajan & Kolter 2019 (distance from initialization), Jiang et al. 2019 (margin normalization).
"""

from __future__ import annotations

import math

import torch

from rethinkgen.measures import MeasureContext, MeasureUnavailable, register_measure
from rethinkgen.measures.network import path_norm_network


# ---------------------------------------------------------------------------------------------- helpers
def spectral_norm(weight: torch.Tensor) -> float:
    """Largest singular value of the weight reshaped to (out, in·k·k). For a conv this is the usual proxy,
    not the operator norm of the convolution itself (which can be up to √(k·k) times larger). Computed as
    the square root of the largest eigenvalue of the smaller Gram matrix: the same value to ~1e-15 relative
    in float64, and faster than an SVD (see docs/benchmarks.md).

    Args:
        weight: a layer's weight, ``[out, in, ...]``.
    """
    matrix = weight.reshape(weight.shape[0], -1)
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return torch.linalg.eigvalsh(gram)[-1].clamp(min=0).sqrt().item()


def path_l2_norm(context: MeasureContext) -> float:
    """The l2 path norm of the network: the square root of the sum over input-output paths of the
    squared product of the weights along the path.

    Args:
        context: the trained network and its data (for the input shape).
    """
    squared = path_norm_network(context.network)
    ones = torch.ones((1,) + tuple(context.x_train.shape[1:]), dtype=torch.float64, device=context.x_train.device)
    with torch.no_grad():
        return math.sqrt(squared.double()(ones).sum().item())


def distance_from_init(context: MeasureContext) -> float:
    """The l2 distance of the weights from their initial values (initial.pt).

    Args:
        context: the trained network and its initial state.
    """
    if context.initial_state is None:
        raise MeasureUnavailable("the run's initial weights (initial.pt) are missing")
    total = 0.0
    for name, parameter in context.model.named_parameters():
        start = context.initial_state[name].to(parameter.device, torch.float64)
        total += (parameter.detach().double() - start).square().sum().item()
    return math.sqrt(total)


# ---------------------------------------------------------------------------------------------- measures
@register_measure("num_parameters", kind="size")
def num_parameters(context: MeasureContext) -> float:
    """Number of trainable parameters of the model as trained (BN shifts included)."""
    return sum(p.numel() for p in context.model.parameters() if p.requires_grad)


@register_measure("inverse_margin", kind="margin")
def inverse_margin(context: MeasureContext) -> float:
    """1/γ, γ the 10th percentile over the training set of f(x)[y] − max_{j≠y} f(x)[j] (Jiang et al. 2019)."""
    return 1.0 / context.margin


@register_measure("frobenius_sum", kind="norm")
def frobenius_sum(context: MeasureContext) -> float:
    """Σ_i ‖W_i‖_F, the sum of the layers' Frobenius norms."""
    return sum(torch.linalg.vector_norm(w).item() for w in context.weights)


@register_measure("frobenius_sum_over_margin", kind="norm")
def frobenius_sum_over_margin(context: MeasureContext) -> float:
    """Σ_i ‖W_i‖_F / γ."""
    return frobenius_sum(context) / context.margin


@register_measure("log_frobenius_product", kind="norm")
def log_frobenius_product(context: MeasureContext) -> float:
    """log Π_i ‖W_i‖_F, the product of the layers' Frobenius norms (Neyshabur et al. 2015)."""
    return sum(math.log(torch.linalg.vector_norm(w).item()) for w in context.weights)


@register_measure("log_frobenius_product_over_margin", kind="norm")
def log_frobenius_product_over_margin(context: MeasureContext) -> float:
    """log(Π_i ‖W_i‖_F / γ)."""
    return log_frobenius_product(context) - math.log(context.margin)


@register_measure("log_spectral_product", kind="norm")
def log_spectral_product(context: MeasureContext) -> float:
    """log Π_i ‖W_i‖_2, the product of the layers' spectral norms (Bartlett et al. 2017)."""
    return sum(math.log(norm) for norm in context.spectral_norms)


@register_measure("log_spectral_product_over_margin", kind="norm")
def log_spectral_product_over_margin(context: MeasureContext) -> float:
    """log(Π_i ‖W_i‖_2 / γ), the margin-normalized spectral product."""
    return log_spectral_product(context) - math.log(context.margin)


@register_measure("path_l2", kind="norm")
def path_l2(context: MeasureContext) -> float:
    """√(Σ over input-output paths of Π of the squared weights on the path) = √(Σ_k f_{W∘W}(1)[k]), biases as
    edges from a constant unit (Neyshabur et al. 2015). Invariant to rescaling a ReLU layer up and the
    next one down. Max pools and LRN are approximated: see ``network.path_norm_network``."""
    return path_l2_norm(context)


@register_measure("path_l2_over_margin", kind="norm")
def path_l2_over_margin(context: MeasureContext) -> float:
    """path-l2 norm / γ."""
    return path_l2_norm(context) / context.margin


@register_measure("distance_from_init", kind="norm")
def distance_from_init_measure(context: MeasureContext) -> float:
    """‖θ − θ_0‖_2 over every trainable parameter as trained (not BN-folded): how far SGD moved the weights
    (Nagarajan & Kolter 2019)."""
    return distance_from_init(context)


@register_measure("distance_from_init_over_margin", kind="norm")
def distance_from_init_over_margin(context: MeasureContext) -> float:
    """‖θ − θ_0‖_2 / γ."""
    return distance_from_init(context) / context.margin
