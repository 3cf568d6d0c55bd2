"""Helpers shared by the test modules."""

import textwrap

# a model module whose network fails as soon as it trains (it evaluates fine): a run that must fail
FAILING_MODEL_SOURCE = textwrap.dedent("""
    from torch import nn

    class TrainsBadly(nn.Module):
        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.linear = nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], num_classes)

        def forward(self, x):
            if self.training:
                raise RuntimeError("boom in training")
            return self.linear(x.flatten(1))

    def build(input_shape, num_classes):
        return TrainsBadly(input_shape, num_classes)
""")


def interrupting_evaluate(real_evaluate, at_call: int):
    """train.evaluate that stops training as Ctrl-C would at its ``at_call``-th call (during that epoch)."""
    calls = []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)
    return evaluate
