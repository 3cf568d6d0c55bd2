"""The engine: trains one run, or K compatible runs at once, through one epoch loop.

- ``evaluate``: logits of a model in evaluation mode and the epoch-end metrics computed from them.
"""
