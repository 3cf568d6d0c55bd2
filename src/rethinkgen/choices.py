"""The names a user can choose from, as plain tuples that import nothing heavy.

The command line builds its ``choices`` and ``rethinkgen list`` from these without importing torch; the
registries they name (datasets, models, presets, ...) are checked against them in ``tests/test_choices.py``.
"""

DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic", "imagefolder")
MODEL_LRS = {  # the paper's networks and their initial learning rates (App. A; Inception V3: this project's)
    "mlp-1x512": 0.01, "mlp-3x512": 0.01, "alexnet-small": 0.01, "inception-small": 0.1, "inception-small-nobn": 0.1,
    "inception-v3": 0.01,
}
MODELS = tuple(MODEL_LRS)
# model families whose size is in the name (D hidden layers of W units; a 5-layer CNN of base width K), for
# model-size sweeps: the pattern whose groups are the sizes, and the family's initial learning rate
MODEL_FAMILIES = {"mlp-DxW": (r"mlp-([1-9])x([1-9][0-9]{0,4})", 0.01), "cnn5-K": (r"cnn5-([1-9][0-9]{0,2})", 0.01)}
# the paper's order, then the experiments that followed it
PRESETS = ("figure1a", "figure1bc", "table1", "table4", "figure2b", "measures", "table2", "memorization",
           "double-descent")
INPUTS = ("original", "shuffled-pixels", "random-pixels", "gaussian")  # input randomizations
LABEL_NOISE_MODES = ("uniform", "other")  # a corrupted label: uniform over all classes, or over the others
AUGMENTATIONS = ("crop", "flip", "rotate", "jitter")
MEASURE_SETS = ("none", "cheap", "all")
MEASURE_KINDS = ("size", "norm", "margin", "flatness", "optimization", "user")
AMP_MODES = ("off", "bf16", "auto")
SWITCH_MODES = ("off", "on", "auto")
SCALES = ("paper", "small", "tiny")
EXECUTORS = ("local", "ray")  # where a sweep's runs go: processes here, or a Ray cluster
RESULT_FORMATS = ("table", "csv", "json", "parquet")  # rethinkgen results --format
