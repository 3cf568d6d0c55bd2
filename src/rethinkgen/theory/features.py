"""Section 5 / Table 3: fixed feature maps that the kernel "regression" K alpha = y is solved on.

The paper interpolates with no regularization on (a) raw pixels, (b) MNIST after a Gabor wavelet
transform (0.6% test error vs 1.2% raw) and (c) CIFAR-10 after a "random conv-net" in the style of
Coates & Ng (2012) whose filters are chosen at random instead of by k-means (17% vs 46% raw). None of
these features is learned from labels, so the good test error is bought by the preprocessing alone.
The paper gives no filter-bank parameters, patch size or pooling; the choices below are documented
constants, and the main ones are arguments.

Every map takes uint8 images ``[N, C, H, W]`` (numpy) and returns a float32 numpy matrix ``[N, F]``:

* ``raw``:         F = C*H*W, pixels in [0, 1].
* ``gabor``:       F = C * orientations * len(scales) * ceil(H/pool) * ceil(W/pool) (x2 with
  ``rectify="relu"``), plus C*H*W with ``keep_raw``. At the defaults (8 orientations, 3 wavelengths,
  4-pixel cells): 1*8*3*7*7 = 1,176 for MNIST 1x28x28, 3*8*3*8*8 = 4,608 for CIFAR 3x32x32.
* ``random-conv``: F = n_filters * 2 * pool_grid**2. At the defaults (1,600 filters, 2x2 quadrants):
  12,800 for MNIST and CIFAR alike.

Images are processed in chunks so that no intermediate tensor exceeds ``CHUNK_ELEMENTS`` floats;
the chunk size does not change the result.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch
import torch.nn.functional as F

from rethinkgen.errors import RethinkgenError, choice_error

CHUNK_ELEMENTS = 1 << 24  # largest intermediate tensor per chunk of images: 16M floats, 64 MB
RANDOM_CHUNK_ELEMENTS = 1 << 21  # random-conv blocks of 8 MB: measured ~3x faster than 128 MB blocks (cache)

# Gabor wavelet transform (MNIST in Table 3)
GABOR_ORIENTATIONS = 8           # 22.5 degree steps over [0, pi) (theta + pi repeats theta); 4 did worse
GABOR_SCALES = (2.0, 4.0, 8.0)   # wavelengths (px), octaves up from Nyquist; beat (4, 8) and (3, 6, 12)
GABOR_SIGMA_PER_WAVELENGTH = 0.56  # Gaussian width giving a one-octave frequency bandwidth (Daugman 1985)
GABOR_TRUNCATE = 2.0             # kernel half-width in sigmas when kernel_size is not given (env. >= 13% kept)
GABOR_POOL = 4                   # average-pool cell in pixels: a 7x7 grid on MNIST, 8x8 on CIFAR
GABOR_PADDING = "replicate"      # edge padding: zero padding would put a fake edge around CIFAR images
RECTIFIERS = ("abs", "relu")     # |r|, or relu(r) and relu(-r) kept apart (twice the features)

# Random single-layer conv-net (CIFAR-10 in Table 3; Coates, Lee & Ng 2011, Coates & Ng 2012)
RANDOM_FILTERS = 1600            # Coates & Ng's usual dictionary size; the paper's 32,000 costs 20x more
RANDOM_PATCH = 6                 # Coates et al.'s best receptive field on CIFAR (6x6 px)
RANDOM_POOL_GRID = 2             # sum-pool each map over its four quadrants, as Coates et al. do
RANDOM_ALPHA = 0.25              # threshold on the filter-patch cosine; beat 0.5 and 0.75 on Fashion-MNIST
PATCH_STD_EPS = 0.1              # added to a patch's pixel std (image std units): flat patches give ~0, not noise
IMAGE_STD_EPS = 1.0 / 255        # added to an image's pixel std: a blank image stays finite
MIN_FILTER_STD = 0.05            # candidate patches flatter than this ([0, 1] pixels) are redrawn: they are background
FILTER_DRAW_ROUNDS = 20          # redraw rounds before concluding the training images are (almost) blank


def _check_images(images, what: str = "images") -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        shape = getattr(images, "shape", type(images).__name__)
        raise RethinkgenError(f"{what} must be a numpy array [N, C, H, W], got {shape}")
    if images.dtype != np.uint8:
        raise RethinkgenError(f"{what} must be uint8 (0..255), got {images.dtype}")
    return images


def _to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 -> float32 tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)


def _chunks(n: int, per_image_elements: int, chunk_size: int | None, budget: int = CHUNK_ELEMENTS):
    """Start indices and a chunk length keeping each chunk's largest tensor under ``budget`` floats."""
    if chunk_size is None:
        chunk_size = max(1, budget // max(1, per_image_elements))
    elif chunk_size < 1:
        raise RethinkgenError(f"chunk_size must be at least 1, got {chunk_size}")
    return range(0, n, chunk_size), chunk_size


# --------------------------------------------------------------------------------------------- raw

class RawFeatures:
    """Pixels in [0, 1], flattened: the baseline rows of Table 3. ``fit`` learns nothing."""

    def fit(self, train_images: np.ndarray) -> "RawFeatures":
        """Check the training images and return ``self`` (these features learn nothing).

        Args:
            train_images: uint8 ``[N, C, H, W]``.
        """
        _check_images(train_images, "train_images")
        return self

    def transform(self, images: np.ndarray) -> np.ndarray:
        """The pixels of ``images`` in [0, 1], flattened, float32 ``[N, features]``.

        Args:
            images: uint8 ``[N, C, H, W]``.
        """
        images = _check_images(images)
        return (images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0))

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        """``fit(images)``, then ``transform(images)``.

        Args:
            images: uint8 ``[N, C, H, W]``, the training images.
        """
        return self.fit(images).transform(images)


def raw_features(images: np.ndarray) -> np.ndarray:
    """Pixels scaled to [0, 1] and flattened: ``[N, C*H*W]`` float32."""
    return RawFeatures().transform(images)


# ------------------------------------------------------------------------------------------- Gabor

def gabor_bank(orientations: int = GABOR_ORIENTATIONS, scales=GABOR_SCALES,
               kernel_size: int | None = None) -> torch.Tensor:
    """Real Gabor filters ``[orientations * len(scales), 1, k, k]``, scale-major, float32.

    Filter (theta, lambda): exp(-(x^2 + y^2) / (2 sigma^2)) * cos(2 pi x_theta / lambda) with
    x_theta = x cos(theta) + y sin(theta) and sigma = 0.56 lambda. The envelope-weighted mean is
    subtracted (the Morlet correction) so a filter ignores brightness, then it is scaled to unit L1
    norm so that |response| <= 1 on [0, 1] pixels at every scale.
    """
    scales = tuple(float(s) for s in scales)
    if orientations < 1 or not scales or min(scales) <= 0:
        raise RethinkgenError(
            f"gabor_bank needs orientations >= 1 and positive wavelengths, got {orientations} and {scales}")
    if kernel_size is None:
        kernel_size = 2 * math.ceil(GABOR_TRUNCATE * GABOR_SIGMA_PER_WAVELENGTH * max(scales)) + 1
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise RethinkgenError(f"gabor kernel_size must be a positive odd number, got {kernel_size}")
    half = kernel_size // 2
    y, x = torch.meshgrid(torch.arange(-half, half + 1, dtype=torch.float64),
                          torch.arange(-half, half + 1, dtype=torch.float64), indexing="ij")
    filters = []
    for wavelength in scales:
        sigma = GABOR_SIGMA_PER_WAVELENGTH * wavelength
        envelope = torch.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
        for k in range(orientations):
            theta = math.pi * k / orientations
            carrier = torch.cos(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / wavelength)
            g = envelope * carrier
            g = g - envelope * (g.sum() / envelope.sum())  # zero mean, still localized
            filters.append(g / g.abs().sum())
    return torch.stack(filters)[:, None].float()


class GaborFeatures:
    """Gabor wavelet transform: |image * gabor| per channel, averaged over pool x pool pixel cells.

    A first-order scattering-like representation (Bruna & Mallat 2013): local, orientation- and
    scale-selective energy, stable to small deformations because of the pooling. ``fit`` learns nothing.
    """

    def __init__(self, orientations: int = GABOR_ORIENTATIONS, scales=GABOR_SCALES,
                 kernel_size: int | None = None, pool: int = GABOR_POOL, rectify: str = "abs",
                 keep_raw: bool = False, chunk_size: int | None = None):
        if rectify not in RECTIFIERS:
            raise choice_error("rectifier", rectify, RECTIFIERS)
        if pool < 1:
            raise RethinkgenError(f"gabor pool must be at least 1 pixel, got {pool}")
        self.bank = gabor_bank(orientations, scales, kernel_size)
        self.pool, self.rectify, self.keep_raw, self.chunk_size = pool, rectify, keep_raw, chunk_size

    def fit(self, train_images: np.ndarray) -> "GaborFeatures":
        """Check the training images and return ``self`` (these features learn nothing).

        Args:
            train_images: uint8 ``[N, C, H, W]``.
        """
        _check_images(train_images, "train_images")
        return self

    def output_dim(self, shape) -> int:
        """Feature count for images of shape ``(C, H, W)``."""
        c, h, w = shape
        per_filter = math.ceil(h / self.pool) * math.ceil(w / self.pool) * (2 if self.rectify == "relu" else 1)
        return c * len(self.bank) * per_filter + (c * h * w if self.keep_raw else 0)

    @torch.no_grad()
    def transform(self, images: np.ndarray) -> np.ndarray:
        """The pooled Gabor filter responses of ``images``, float32 ``[N, features]``.

        Args:
            images: uint8 ``[N, C, H, W]``.
        """
        images = _check_images(images)
        n, c, h, w = images.shape
        grid = (math.ceil(h / self.pool), math.ceil(w / self.pool))
        half = self.bank.shape[-1] // 2
        rectified = len(self.bank) * (2 if self.rectify == "relu" else 1)
        starts, size = _chunks(n, c * rectified * (h + 2 * half) * (w + 2 * half), self.chunk_size)
        out = np.empty((n, self.output_dim((c, h, w))), dtype=np.float32)
        for start in starts:
            x = _to_float(images[start:start + size])
            m = len(x)
            # every channel is filtered on its own: fold C into the batch
            padded = F.pad(x.reshape(m * c, 1, h, w), (half, half, half, half), mode=GABOR_PADDING)
            response = F.conv2d(padded, self.bank)
            if self.rectify == "abs":
                response = response.abs_()
            else:
                response = torch.cat([torch.relu(response), torch.relu(-response)], dim=1)
            pooled = F.adaptive_avg_pool2d(response, grid).reshape(m, -1)
            if self.keep_raw:
                pooled = torch.cat([pooled, x.reshape(m, -1)], dim=1)
            out[start:start + m] = pooled.numpy()
        return out

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        """``fit(images)``, then ``transform(images)``.

        Args:
            images: uint8 ``[N, C, H, W]``, the training images.
        """
        return self.fit(images).transform(images)


def gabor_features(images: np.ndarray, orientations: int = GABOR_ORIENTATIONS, scales=GABOR_SCALES,
                   kernel_size: int | None = None, pool: int = GABOR_POOL, rectify: str = "abs",
                   keep_raw: bool = False, chunk_size: int | None = None) -> np.ndarray:
    """Gabor wavelet features ``[N, C * orientations * len(scales) * ceil(H/pool) * ceil(W/pool)]``."""
    return GaborFeatures(orientations, scales, kernel_size, pool, rectify, keep_raw, chunk_size).transform(images)


# ------------------------------------------------------------------------------------- random conv

def _pool_matrix(height: int, width: int, grid: int) -> torch.Tensor:
    """0/1 matrix ``[grid^2, height*width]`` summing a map over a grid x grid of near-equal, disjoint cells."""
    rows = torch.from_numpy(np.arange(height) * grid // height)
    cols = torch.from_numpy(np.arange(width) * grid // width)
    cell = (rows[:, None] * grid + cols[None, :]).reshape(-1)
    return F.one_hot(cell, grid * grid).T.float()


class RandomConvFeatures:
    """Coates & Ng's single-layer network with random filters: the "random conv-net" of Table 3.

    ``fit`` draws ``n_filters`` patches at random positions of random training images (with replacement,
    redrawing near-constant background patches) and normalizes each (subtract its mean, divide by its norm):
    Coates & Ng's "random patches" dictionary, with no k-means. The same filters then serve every
    later ``transform``, train and test images alike.

    ``transform`` standardizes each image (zero mean, unit pixel std), correlates it with every filter
    (stride 1, valid: one matrix product over all p x p windows) and divides each response by the
    window's own centered norm, so a response is the cosine between filter and patch: Coates et al.'s
    per-patch contrast normalization, without materializing normalized patches per filter. The encoder relu(z - alpha), relu(-z - alpha) keeps strong matches of
    either sign; each map is sum-pooled over a pool_grid x pool_grid grid of quadrants.

    ``filters`` ``[n_filters, C, p, p]`` and ``sources`` (image, row, column of each patch) are set by fit.
    Feature dimension: n_filters * 2 * pool_grid**2, laid out as [filter, sign, grid row, grid column].
    """

    def __init__(self, n_filters: int = RANDOM_FILTERS, patch_size: int = RANDOM_PATCH,
                 pool_grid: int = RANDOM_POOL_GRID, seed: int = 0, alpha: float = RANDOM_ALPHA,
                 chunk_size: int | None = None):
        if n_filters < 1 or patch_size < 1 or pool_grid < 1:
            raise RethinkgenError(
                f"random-conv needs n_filters, patch_size and pool_grid >= 1, got {n_filters}, "
                f"{patch_size}, {pool_grid}")
        if alpha < 0:
            raise RethinkgenError(f"random-conv threshold alpha must be >= 0, got {alpha}")
        self.n_filters, self.patch_size, self.pool_grid = n_filters, patch_size, pool_grid
        self.seed, self.alpha, self.chunk_size = seed, alpha, chunk_size
        self.filters: torch.Tensor | None = None
        self.sources: np.ndarray | None = None

    @property
    def output_dim(self) -> int:
        """The feature count: n_filters * 2 * pool_grid**2."""
        return self.n_filters * 2 * self.pool_grid ** 2

    def _check_shape(self, shape, what: str) -> None:
        _, c, h, w = shape
        p = self.patch_size
        if p > h or p > w:
            raise RethinkgenError(f"random-conv patch_size {p} is larger than the {what} ({h}x{w})")
        if self.pool_grid > min(h, w) - p + 1:
            raise RethinkgenError(
                f"random-conv pool_grid {self.pool_grid} exceeds the {h - p + 1}x{w - p + 1} response maps of "
                f"{p}x{p} patches on {h}x{w} {what}")

    def fit(self, train_images: np.ndarray) -> "RandomConvFeatures":
        """Draw the filters: ``n_filters`` non-flat patches of the training images, centred and normalized; returns ``self``.

        Args:
            train_images: uint8 ``[N, C, H, W]``.
        """
        train_images = _check_images(train_images, "train_images")
        self._check_shape(train_images.shape, "train images")
        n, c, h, w = train_images.shape
        p = self.patch_size
        if n == 0:
            raise RethinkgenError("random-conv needs at least one training image to draw filters from")
        windows = np.lib.stride_tricks.sliding_window_view(train_images, (p, p), axis=(2, 3))  # no copy
        rng = np.random.default_rng(self.seed)
        kept_patches, kept_sources = [], []
        needed = self.n_filters
        for _ in range(FILTER_DRAW_ROUNDS):
            draws = 2 * needed + 16
            sources = np.stack([rng.integers(0, n, draws), rng.integers(0, h - p + 1, draws),
                                rng.integers(0, w - p + 1, draws)], axis=1)
            patches = torch.from_numpy(windows[sources[:, 0], :, sources[:, 1], sources[:, 2]]).float() / 255.0
            patches = patches.reshape(draws, -1)
            keep = (patches.std(dim=1, unbiased=False) >= MIN_FILTER_STD).nonzero()[:, 0][:needed]
            kept_patches.append(patches[keep])
            kept_sources.append(sources[keep.numpy()])
            needed -= len(keep)
            if needed == 0:
                break
        else:
            raise RethinkgenError(
                f"random-conv found only {self.n_filters - needed} of {self.n_filters} non-flat {p}x{p} patches "
                f"(pixel std >= {MIN_FILTER_STD}) in the training images; are they blank?")
        patches = torch.cat(kept_patches)
        centered = patches - patches.mean(dim=1, keepdim=True)
        self.filters = (centered / centered.norm(dim=1, keepdim=True)).reshape(self.n_filters, c, p, p)
        self.sources = np.concatenate(kept_sources)
        return self

    @torch.no_grad()
    def transform(self, images: np.ndarray) -> np.ndarray:
        """The thresholded, pooled filter responses of ``images`` (after ``fit``), float32 ``[N, features]``.

        Args:
            images: uint8 ``[N, C, H, W]``.
        """
        images = _check_images(images)
        if self.filters is None:
            raise RethinkgenError("random-conv features must be fit on training images before transform")
        if images.shape[1] != self.filters.shape[1]:
            raise RethinkgenError(
                f"random-conv filters were drawn from {self.filters.shape[1]}-channel images, "
                f"got {images.shape[1]} channels")
        self._check_shape(images.shape, "images")
        n, c, h, w = images.shape
        p, grid = self.patch_size, self.pool_grid
        mh, mw = h - p + 1, w - p + 1
        pool = _pool_matrix(mh, mw, grid)  # [grid^2, mh*mw]: sum pooling as one matmul
        weights = self.filters.reshape(self.n_filters, -1).T.contiguous()  # [C*p*p, n_filters]
        starts, size = _chunks(n, self.n_filters * mh * mw, self.chunk_size, RANDOM_CHUNK_ELEMENTS)
        out = np.empty((n, self.output_dim), dtype=np.float32)
        for start in starts:
            x = _to_float(images[start:start + size])
            m = len(x)
            flat = x.reshape(m, -1)
            x = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, unbiased=False, keepdim=True) + IMAGE_STD_EPS)
                 ).reshape(m, c, h, w)
            # [m, positions, C*p*p], ordered like the filters; F.unfold (im2col) is ~100x slower on CPU
            patches = x.unfold(2, p, 1).unfold(3, p, 1).permute(0, 2, 3, 1, 4, 5).reshape(m, mh * mw, -1)
            # filters have zero mean, so <f, patch> = <f, patch - its mean>: divide by that centered norm
            scale = patches.std(dim=2, unbiased=False, keepdim=True).add_(PATCH_STD_EPS).mul_(math.sqrt(c * p * p))
            z = (patches / scale) @ weights  # [m, positions, n_filters]: cosine of filter and patch
            positive = pool @ (z - self.alpha).clamp_(min=0)
            negative = pool @ z.neg_().sub_(self.alpha).clamp_(min=0)
            codes = torch.stack([positive, negative], dim=3)  # [m, grid^2, n_filters, 2]
            out[start:start + m] = codes.permute(0, 2, 3, 1).reshape(m, -1).numpy()
        return out

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        """``fit(images)``, then ``transform(images)``.

        Args:
            images: uint8 ``[N, C, H, W]``, the training images.
        """
        return self.fit(images).transform(images)


def random_conv_features(images: np.ndarray, n_filters: int = RANDOM_FILTERS, patch_size: int = RANDOM_PATCH,
                         pool_grid: int = RANDOM_POOL_GRID, seed: int = 0, train_images: np.ndarray | None = None,
                         alpha: float = RANDOM_ALPHA, chunk_size: int | None = None) -> np.ndarray:
    """Random conv-net features ``[N, n_filters * 2 * pool_grid**2]``.

    Filters are drawn from ``train_images`` (default: ``images`` themselves). To featurize a train and a
    test split with the same filters, pass the train split here, or use ``RandomConvFeatures``.
    """
    features = RandomConvFeatures(n_filters, patch_size, pool_grid, seed, alpha, chunk_size)
    return features.fit(images if train_images is None else train_images).transform(images)


# -------------------------------------------------------------------------------------- registry

FEATURE_MAPS = {"raw": RawFeatures, "gabor": GaborFeatures, "random-conv": RandomConvFeatures}


def make_feature_map(name: str, **options):
    """A feature map by name, with ``.fit(train_images)`` and ``.transform(images)``.

    >>> fmap = make_feature_map("random-conv", n_filters=64).fit(train_x)   # doctest: +SKIP
    >>> train_f, test_f = fmap.transform(train_x), fmap.transform(test_x)  # doctest: +SKIP
    """
    if name not in FEATURE_MAPS:
        raise choice_error("feature map", name, FEATURE_MAPS)
    cls = FEATURE_MAPS[name]
    allowed = list(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise RethinkgenError(
            f"feature map {name!r} does not take option(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}")
    return cls(**options)
