"""Flatness measures: how much the training loss and accuracy suffer under random weight perturbations.

Perturbations are magnitude-aware (Keskar et al. 2017's box, Jiang et al. 2019's "mag" measures): every
parameter w_i of the BN-folded network, biases included, moves by u_i = σ·(|w_i| + FLOOR)·z_i with
z_i ~ N(0, 1). With FLOOR = 0 rescaling a ReLU layer up and the next down changes neither measure.
Both measures use a fixed seed (draw k always uses the same z, so different σ are compared on common
random numbers), a fixed subset of at most ``examples`` training examples, and a bounded number of
forward passes over it: ``sharpness_draws`` for sharpness, ``scale_draws`` × (``bisection_steps`` + 2)
for the perturbation scale. Random draws give a lower bound on the worst case that Keskar et al.
maximize by gradient ascent; that is an approximation, chosen for a fixed, small cost.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from rethinkgen.engine.evaluate import predict
from rethinkgen.measures import MeasureContext, register_measure

DEFAULTS = {
    "seed": 0,
    "examples": 2048,          # training examples the flatness measures evaluate on (a fixed seeded subset)
    "floor": 1e-3,             # the additive part of the perturbation's scale, so zero weights move too
    "sharpness_scale": 0.05,   # σ of the sharpness perturbations: 5% of each weight's magnitude
    "sharpness_draws": 10,     # perturbations drawn for sharpness; the largest loss increase counts
    "accuracy_drop": 0.1,      # the perturbation scale is where training accuracy falls by this much
    "scale_low": 1e-4,         # the bisection's search interval for σ (geometric)
    "scale_high": 10.0,
    "bisection_steps": 10,     # halvings of log(high / low): about 1% relative precision
    "scale_draws": 4,          # perturbations averaged per accuracy evaluation
}


def settings(context: MeasureContext) -> dict:
    """The flatness settings (``DEFAULTS``), each as given in ``context`` or its default.

    Args:
        context: the trained network, its data and its settings.
    """
    return {name: context.setting(name, default) for name, default in DEFAULTS.items()}


class Perturber:
    """Evaluates the folded network at w + σ·(|w| + floor)·z_k for a given σ and draw k, then restores w."""

    def __init__(self, context: MeasureContext, config: dict):
        self.network = context.network
        self.parameters = [p for p in self.network.parameters()]
        self.base = [p.detach().clone() for p in self.parameters]
        self.floor, self.seed, self.batch_size = config["floor"], config["seed"], context.batch_size
        n = len(context.y_train)
        if n > config["examples"]:
            generator = torch.Generator().manual_seed(config["seed"])
            index = torch.randperm(n, generator=generator)[:config["examples"]].to(context.y_train.device)
            self.x, self.y = context.x_train[index], context.y_train[index]
        else:
            self.x, self.y = context.x_train, context.y_train

    @torch.no_grad()
    def evaluate(self, scale: float, draw: int | None) -> tuple[float, float]:
        """(loss, accuracy) on the subset; draw None evaluates the unperturbed network."""
        if draw is not None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + draw)
            for parameter, base in zip(self.parameters, self.base):
                z = torch.randn(base.shape, generator=generator, dtype=torch.float32).to(base.device, base.dtype)
                parameter.copy_(base + scale * (base.abs() + self.floor) * z)
        try:
            logits = predict(self.network, self.x, self.batch_size, plan=False)
            return F.cross_entropy(logits, self.y).item(), (logits.argmax(1) == self.y).float().mean().item()
        finally:
            for parameter, base in zip(self.parameters, self.base):
                parameter.copy_(base)


def bisect_scale(accuracy_at: Callable[[float], float], target: float, low: float, high: float, steps: int) -> float:
    """The largest σ in [low, high] with accuracy_at(σ) >= target, by bisection on log σ (assumes the
    accuracy falls as σ grows). Returns ``high`` if even it keeps the target, ``low`` if even it does not."""
    if accuracy_at(high) >= target:
        return high
    if accuracy_at(low) < target:
        return low
    for _ in range(steps):
        middle = math.sqrt(low * high)
        if accuracy_at(middle) >= target:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)


@register_measure("sharpness", kind="flatness", cheap=False)
def sharpness(context: MeasureContext) -> float:
    """max_k (L(w + u_k) − L(w)) / (1 + L(w)) over ``sharpness_draws`` magnitude-aware perturbations u_k of
    scale σ = ``sharpness_scale``; L the training cross-entropy (Keskar et al. 2017's relative sharpness,
    with random instead of adversarial perturbations)."""
    config = settings(context)
    perturber = Perturber(context, config)
    loss, _ = perturber.evaluate(0.0, None)
    worst = max(perturber.evaluate(config["sharpness_scale"], k)[0] for k in range(config["sharpness_draws"]))
    return (worst - loss) / (1 + loss)


def perturbation_scale(context: MeasureContext) -> float:
    """σ* = the largest σ at which the mean training accuracy over ``scale_draws`` perturbations stays
    within ``accuracy_drop`` of the unperturbed accuracy, found by bisection."""
    config = settings(context)
    perturber = Perturber(context, config)
    _, accuracy = perturber.evaluate(0.0, None)

    def accuracy_at(scale: float) -> float:
        return sum(perturber.evaluate(scale, k)[1] for k in range(config["scale_draws"])) / config["scale_draws"]

    return bisect_scale(accuracy_at, accuracy - config["accuracy_drop"], config["scale_low"], config["scale_high"],
                        config["bisection_steps"])


@register_measure("inverse_perturbation_scale", kind="flatness", cheap=False)
def inverse_perturbation_scale(context: MeasureContext) -> float:
    """1/σ*, σ* the magnitude-aware perturbation scale at which training accuracy drops by ``accuracy_drop``
    (0.1), found by bisection (after Jiang et al. 2019's magnitude-aware PAC-Bayes flatness, which reports
    1/σ²; a power changes no ranking). Larger means sharper."""
    return 1.0 / perturbation_scale(context)
