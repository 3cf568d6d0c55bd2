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


def interrupt_after(epochs: int):
    """An ``on_epoch_end`` hook that stops training as Ctrl-C would once a run has recorded ``epochs``
    epochs (its checkpoint holds them; the next epoch never starts)."""
    def hook(run, epoch):
        if epoch >= epochs:
            raise KeyboardInterrupt
    return hook
