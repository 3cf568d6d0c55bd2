"""The paper's own numbers (Zhang et al. 2017, v2), printed beside measured ones where the setting matches.

Table values are as printed; figure values were read off the rendered plots (about +-0.05) and are
approximate. They apply to CIFAR-10 only, except Table 2's, which apply to ImageNet (ILSVRC 2012).
"""

from __future__ import annotations

PAPER_DATASET = "cifar10"
NOISE_LEVELS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]

# Figure 1b: time to overfit relative to label noise 0 (read off the plot)
FIGURE1B = {
    "inception-small": [1.0, 1.6, 1.9, 2.2, 2.4, 2.5, 2.7, 2.9, 3.1, 3.6, 3.6],
    "mlp-1x512": [1.0, 1.29, 1.43, 1.57, 1.68, 1.78, 1.93, 1.93, 1.97, 2.0, 1.97],
    "alexnet-small": [1.0, 1.06, 1.10, 1.16, 1.23, 1.26, 1.32, 1.35, 1.42, 1.52, 1.55],
}
# Figure 1c: test error after convergence (read off the plot)
FIGURE1C = {
    "inception-small": [0.13, 0.28, 0.41, 0.52, 0.63, 0.71, 0.785, 0.84, 0.875, 0.905, 0.90],
    "alexnet-small": [0.30, 0.41, 0.52, 0.62, 0.69, 0.76, 0.82, 0.855, 0.88, 0.89, 0.90],
    "mlp-1x512": [0.50, 0.585, 0.66, 0.72, 0.755, 0.795, 0.865, 0.865, 0.88, 0.89, 0.90],
}
# Figure 1a: the step (thousands) at which the small Inception's loss reaches about 0 (read off the plot)
FIGURE1A_FIT_KSTEPS = {"true labels": "4.5-5", "shuffled pixels": "6", "gaussian": "8", "random pixels": "9",
                       "random labels": "14"}

# Table 1: (model, random crop, weight decay, random labels) -> (train accuracy %, test accuracy %)
TABLE1 = {
    ("inception-small", True, True, False): (100.0, 89.05),
    ("inception-small", True, False, False): (100.0, 89.31),
    ("inception-small", False, True, False): (100.0, 86.03),
    ("inception-small", False, False, False): (100.0, 85.75),
    ("inception-small", False, False, True): (100.0, 9.78),
    ("inception-small-nobn", False, True, False): (100.0, 83.00),
    ("inception-small-nobn", False, False, False): (100.0, 82.00),
    ("inception-small-nobn", False, False, True): (100.0, 10.12),
    ("alexnet-small", True, True, False): (99.90, 81.22),
    ("alexnet-small", True, False, False): (99.82, 79.66),
    ("alexnet-small", False, True, False): (100.0, 77.36),
    ("alexnet-small", False, False, False): (100.0, 76.07),
    ("alexnet-small", False, False, True): (99.82, 9.86),
    ("mlp-3x512", False, True, False): (100.0, 53.35),
    ("mlp-3x512", False, False, False): (100.0, 52.39),
    ("mlp-3x512", False, False, True): (100.0, 10.48),
    ("mlp-1x512", False, True, False): (99.80, 50.39),
    ("mlp-1x512", False, False, False): (100.0, 50.51),
    ("mlp-1x512", False, False, True): (99.34, 10.61),
}

# Table 4: (model, regularizer) -> training accuracy on random labels, as printed
TABLE4 = {
    ("inception-small", "weight decay"): "100%",
    ("alexnet-small", "weight decay"): "failed to converge",
    ("mlp-3x512", "weight decay"): "100%",
    ("mlp-1x512", "weight decay"): "99.21%",
    ("inception-small", "random cropping"): "99.93%",
    ("inception-small", "augmentation"): "99.28%",
}

# Figure 2b: plateau of test accuracy (read off the plot; Table 1 gives 85.75 and 82.00)
FIGURE2B_TEST_PLATEAU = {"inception-small": 0.865, "inception-small-nobn": 0.85}

# Table 2 (ImageNet, Inception V3): (random labels, data aug, dropout, weight decay) ->
# (top-1 train, top-5 train, top-1 test, top-5 test, best top-1 test, best top-5 test), in %, as printed;
# the best test accuracies (the paper's numbers in parentheses) are given for two rows only
TABLE2_CLASSES = 1000
TABLE2 = {
    (False, True, True, True): (92.18, 99.21, 77.84, 93.92, None, None),
    (False, True, False, False): (92.33, 99.17, 72.95, 90.43, None, None),
    (False, False, False, True): (90.60, 100.0, 67.18, 86.44, 72.57, 91.31),
    (False, False, False, False): (99.53, 100.0, 59.80, 80.38, 63.16, 84.49),
    (True, False, True, True): (91.18, 97.95, 0.09, 0.49, None, None),
    (True, False, False, True): (87.81, 96.15, 0.12, 0.50, None, None),
    (True, False, False, False): (95.20, 99.14, 0.11, 0.56, None, None),
}
