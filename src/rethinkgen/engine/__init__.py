"""The engine: trains one run, or K compatible runs at once, through one epoch loop.

- ``loop``: the epoch loop (``train_epochs``), the same for one run and for an ensemble.
- ``run``: ``RunState``, one run's bookkeeping (learning rate, draws, step log, divergence, history,
  checkpoint, summary, stop at fit, status).
- ``single``: ``SingleStepper``, the step of one model (one process or torchrun; the GPU switches).
- ``stacked``: ``StackedStepper``, the step of K copies stacked under ``vmap``.
- ``evaluate``: logits in evaluation mode and the epoch-end metrics, for every caller.
- ``data``: the training device and the dataset held on it (``DeviceData``).
- ``seeds``: each epoch's random draws from (seed, epoch, stream).
- ``summary``: what a run's ``summary.json`` says.

``rethinkgen.engine.trainer.train`` and ``rethinkgen.engine.ensemble.train_ensemble`` are the entry points.
"""
