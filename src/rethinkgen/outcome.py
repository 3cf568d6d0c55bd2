"""What a run's summary says in words: whether it fit its training labels, and what labels it had.

A run that ends its epoch budget without reaching its fit threshold is ``complete`` (it ran every epoch)
but did not fit; every place that shows a run's status says so, not only ``fitted: false`` in its summary.
"""

from __future__ import annotations

DID_NOT_FIT = "did not fit"


def did_not_fit(status: str, summary: dict) -> bool:
    """Whether a run ended its epochs (complete) without its training accuracy reaching the fit threshold.

    Args:
        status: the run's status.
        summary: its summary.
    """
    return status == "complete" and summary.get("fitted") is False and summary.get("train_accuracy") is not None


def status_words(status: str, summary: dict) -> str:
    """The status as tables show it: ``complete, did not fit`` for a run that ran out of epochs unfitted.

    Args:
        status: the run's status.
        summary: its summary.
    """
    return f"{status}, {DID_NOT_FIT}" if did_not_fit(status, summary) else status


def fit_words(summary: dict, fit_threshold: float) -> str:
    """``fitted at step S (epoch E)``, or ``did not fit: train accuracy A < T after N epochs``.

    Args:
        summary: the run's summary.
        fit_threshold: the training accuracy at which the run counts as fitted (its config's).
    """
    if summary.get("fitted"):
        return f"fitted at step {summary['steps_to_fit']} (epoch {summary['epochs_to_fit']})"
    accuracy = summary.get("train_accuracy")
    reached = "no epoch" if accuracy is None else f"train accuracy {accuracy:.4f}"
    epochs = summary.get("epochs_completed", 0)
    return f"{DID_NOT_FIT}: {reached} < fit threshold {fit_threshold:g} after {epochs} epoch{'' if epochs == 1 else 's'}"


def label_words(summary: dict, label_noise: float) -> str:
    """The realized label noise: ``labels changed 45.2% (p=0.5, uniform); test chance 0.1000``.

    Args:
        summary: the run's summary (``fraction_labels_changed``, ``label_noise_mode``, ``chance_test_accuracy``).
        label_noise: the run's label noise p.
    """
    words = (f"labels changed {summary.get('fraction_labels_changed', 0.0):.1%} "
             f"(p={label_noise:g}, {summary.get('label_noise_mode', 'uniform')})")
    if summary.get("fraction_test_labels_changed") is not None:
        words += f", test labels changed {summary['fraction_test_labels_changed']:.1%}"
    if summary.get("chance_test_accuracy") is not None:
        words += f"; chance test accuracy {summary['chance_test_accuracy']:.4f}"
    return words
