"""ImageNet-style folders of images: listed once, decoded one image at a time while training.

ImageNet does not fit in memory as uint8 (1.28 million images of 3x299x299 are 340 GB), so this source
returns ``ImageFiles`` (file names and labels) instead of a ``Dataset``, and the trainer
streams its images through a DataLoader with worker processes (``rethinkgen.engine.streaming``).

Layouts accepted (``root`` is ``--data-dir``, or ``$RETHINKGEN_DATA/imagenet``):

- ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*.JPEG`` (torchvision's ImageFolder layout); the
  test split may also be called ``validation`` or ``test``;
- images anywhere below a class folder (Tiny ImageNet's ``train/<class>/images/*.JPEG``);
- a flat test folder (``val/*.JPEG`` or ``val/images/*.JPEG``) with a label file: Tiny ImageNet's
  ``val/val_annotations.txt`` or Kaggle ImageNet's ``LOC_val_solution.csv`` (in ``root`` or up to three
  folders above it);
- ``root/ILSVRC/Data/CLS-LOC/`` (Kaggle's ImageNet download) in place of ``root``.

Classes are the training class folders, sorted by name. Every image is decoded with Pillow as RGB,
its shorter side resized to ``image_size`` (antialiased bilinear), and centre-cropped to
``image_size`` x ``image_size``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rethinkgen.checks import integer
from rethinkgen.data.dataset import _stratified_indices
from rethinkgen.data.download import cache_root, check_folder
from rethinkgen.errors import RethinkgenError

NAME = "imagefolder"
DEFAULT_IMAGE_SIZE = 299  # Inception V3's input, as in the paper's ImageNet runs (App. A)
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# annotation files that ImageNet-style folders keep beside the images (bounding boxes, Tiny ImageNet's
# *_boxes.txt); skipped, like hidden files. Any other file is refused.
SKIPPED_EXTENSIONS = (".txt", ".csv", ".xml", ".json")
TEST_SPLITS = ("val", "validation", "test")
KAGGLE_ROOT = Path("ILSVRC") / "Data" / "CLS-LOC"
LABEL_FILES = ("val_annotations.txt", "LOC_val_solution.csv")


@dataclass(frozen=True)
class ImageFiles:
    """Train and test images as file paths (relative to ``root``) and int64 labels.

    ``pixels``, set by ``randomize``, is the input randomization applied to each image as it is decoded.
    """

    name: str
    root: Path
    train_files: np.ndarray  # bytes paths: one array, not a million str objects copied into every worker
    y_train: np.ndarray
    test_files: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    image_size: int = DEFAULT_IMAGE_SIZE
    pixels: object = None

    @property
    def num_classes(self) -> int:
        """The number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """One decoded image's shape, (3, image_size, image_size)."""
        return (3, self.image_size, self.image_size)

    def path(self, split: str, index: int) -> Path:
        """The file of image ``index`` of ``split``.

        Args:
            split: ``train`` or ``test``.
            index: the image's position in that split.
        """
        files = self.train_files if split == "train" else self.test_files
        return self.root / os.fsdecode(files[index])

    def image(self, split: str, index: int) -> np.ndarray:
        """Image ``index`` of ``split`` as uint8 [3, S, S], with the input randomization applied."""
        image = decode(self.path(split, index), self.image_size)
        return image if self.pixels is None else self.pixels.apply(image, split, index)

    def subset(self, n: int | None = None, seed: int = 0, n_test: int | None = None) -> "ImageFiles":
        """A stratified subset, chosen exactly as ``Dataset.subset`` chooses it."""
        changes = {}
        if n is not None:
            idx = self.subset_indices(n, seed)
            changes.update(train_files=self.train_files[idx], y_train=self.y_train[idx])
        if n_test is not None:
            idx = _stratified_indices(self.y_test, n_test, seed + 1, "test", self.name)
            changes.update(test_files=self.test_files[idx], y_test=self.y_test[idx])
        return replace(self, **changes)

    def subset_indices(self, n: int, seed: int = 0) -> np.ndarray:
        """The sorted indices of a stratified subset of ``n`` training images, the same for the same seed.

        Args:
            n: how many.
            seed: seeds the draw.
        """
        return _stratified_indices(self.y_train, n, seed, "train", self.name)

    def content_hash(self) -> str:
        """A short SHA-256 of the file names, labels, image size and input randomization.

        File contents are not read (that would take as long as an epoch of ImageNet): a file replaced by
        another of the same name goes unnoticed.
        """
        digest = hashlib.sha256(f"{self.image_size}|{self.classes}|".encode())
        for array in (self.train_files, self.y_train, self.test_files, self.y_test):
            digest.update(str(array.shape).encode())
            digest.update(b"\0".join(array) if array.dtype.kind == "S" else np.ascontiguousarray(array).tobytes())
        if self.pixels is not None:
            digest.update(self.pixels.key().encode())
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        """One line: name, split sizes, image shape and number of classes."""
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test, images "
                f"{'x'.join(map(str, self.image_shape))}, {self.num_classes} classes")


def decode(path: Path, size: int) -> np.ndarray:
    """One image file as uint8 [3, size, size]: RGB, shorter side resized to ``size``, centre-cropped."""
    from PIL import Image  # only when images are decoded: keeps config (and CLI start-up) light

    try:
        with Image.open(path) as opened:
            opened.draft("RGB", (size, size))  # JPEG: decode at the smallest scale that is still >= size
            image = opened.convert("RGB")
        width, height = image.size
        scale = size / min(width, height)
        new = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(new, Image.BILINEAR)
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise RethinkgenError(f"{path}: not a readable image ({error})") from None
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def locate(data_dir=None) -> Path | None:
    """The folder holding ``train/``: ``data_dir`` (or the cache's ``imagenet``), or Kaggle's sub-folder."""
    root = Path(data_dir) if data_dir is not None else cache_root() / "imagenet"
    for candidate in (root, root / KAGGLE_ROOT):
        if (candidate / "train").is_dir():
            return candidate
    return None


def load_imagefolder(data_dir=None, download: bool = False, image_size: int = DEFAULT_IMAGE_SIZE) -> ImageFiles:
    """List an ImageNet-style folder (see the module docstring for the layouts)."""
    if download:
        raise RethinkgenError(f"{NAME}: there is nothing to download (ImageNet needs a registered account); "
                              "point --data-dir at a folder with train/ and val/")
    image_size = integer(f"{NAME}: image size", image_size, 1)
    root = locate(data_dir)
    if root is None:
        where = Path(data_dir) if data_dir is not None else cache_root() / "imagenet"
        check_folder(NAME, where)
        raise RethinkgenError(f"{NAME}: no train/ folder in {where}; expected {where}/train/<class>/*.JPEG "
                              f"and {where}/val/<class>/*.JPEG")
    train = root / "train"
    classes = tuple(sorted(entry.name for entry in os.scandir(train) if entry.is_dir()
                           and not entry.name.startswith(".")))
    if not classes:
        raise RethinkgenError(f"{NAME}: {train} has no class folders; expected {train}/<class>/*.JPEG")
    train_files, y_train = _class_folders(root, train, classes)
    test = next((root / name for name in TEST_SPLITS if (root / name).is_dir()), None)
    if test is None:
        raise RethinkgenError(f"{NAME}: no test split beside {train}; expected one of "
                              + ", ".join(str(root / name) for name in TEST_SPLITS))
    if any(entry.is_dir() and entry.name in classes for entry in os.scandir(test)):
        test_files, y_test = _class_folders(root, test, classes, training=False)
    else:
        test_files, y_test = _flat_split(root, test, classes)
    return ImageFiles(NAME, root, train_files, y_train, test_files, y_test, classes, int(image_size))


def _images_below(folder: Path) -> list[Path]:
    """Every image file below ``folder``, sorted; a file that is neither image nor annotation is an error."""
    found = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(names):
            extension = os.path.splitext(name)[1].lower()
            if name.startswith(".") or extension in SKIPPED_EXTENSIONS:
                continue
            if extension not in IMAGE_EXTENSIONS:
                raise RethinkgenError(f"{NAME}: {Path(directory) / name} is not an image file; allowed "
                                      f"extensions: {', '.join(IMAGE_EXTENSIONS)} (any case)")
            found.append(Path(directory) / name)
    return found


def _as_array(root: Path, paths: list[Path]) -> np.ndarray:
    return np.array([os.fsencode(p.relative_to(root)) for p in paths], dtype=np.bytes_) if paths \
        else np.zeros(0, dtype="S1")


def _class_folders(root: Path, split: Path, classes: tuple[str, ...], training: bool = True):
    """``split/<class>/...`` folders: every class present in training must hold at least one image."""
    index = {name: k for k, name in enumerate(classes)}
    paths, labels = [], []
    for entry in sorted(os.scandir(split), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if os.path.splitext(entry.name)[1].lower() in SKIPPED_EXTENSIONS:
                continue
            raise RethinkgenError(f"{NAME}: {entry.path} is a file among the class folders of {split}")
        if entry.name not in index:
            raise RethinkgenError(f"{NAME}: class folder {entry.path} has no training class of that name "
                                  f"in {root / 'train'}")
        images = _images_below(Path(entry.path))
        if not images:
            raise RethinkgenError(f"{NAME}: class folder {entry.path} holds no images "
                                  f"({', '.join(IMAGE_EXTENSIONS)})")
        paths += images
        labels += [index[entry.name]] * len(images)
    return _as_array(root, paths), np.array(labels, dtype=np.int64)


def _flat_split(root: Path, split: Path, classes: tuple[str, ...]):
    """A test folder of images without class folders, labelled by a label file."""
    label_file = next((folder / name for folder in (split, root, *list(root.parents)[:3]) for name in LABEL_FILES
                       if (folder / name).is_file()), None)
    if label_file is None:
        raise RethinkgenError(f"{NAME}: {split} has no class folders and no label file ("
                              f"{' or '.join(LABEL_FILES)}); expected {split}/<class>/*.JPEG")
    labels = _read_label_file(label_file, classes)
    images = _images_below(split / "images" if (split / "images").is_dir() else split)
    if not images:
        raise RethinkgenError(f"{NAME}: {split} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    y = []
    for path in images:
        label = labels.get(path.name, labels.get(path.stem))
        if label is None:
            raise RethinkgenError(f"{NAME}: {path} has no label in {label_file}")
        y.append(label)
    return _as_array(root, images), np.array(y, dtype=np.int64)


def _read_label_file(path: Path, classes: tuple[str, ...]) -> dict[str, int]:
    """Lines 'file<TAB or comma>class ...' (Tiny ImageNet, Kaggle). A first line without a known class is
    taken for a header and skipped (should it name an image after all, that image is reported unlabelled)."""
    index = {name: k for k, name in enumerate(classes)}
    labels = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, _, rest = line.replace("\t", ",", 1).partition(",")
        label = rest.split()[0] if rest.split() else ""
        if label not in index:
            if number == 1:
                continue  # a header such as "ImageId,PredictionString"
            raise RethinkgenError(f"{NAME}: {path}, line {number}: class {label!r} is not a training class")
        labels[name.strip()] = index[label]
    return labels


def write_imagefolder(root: Path, split: str, images: np.ndarray, labels, classes, extension: str = ".JPEG",
                      quality: int = 95) -> list[Path]:
    """Write uint8 images [N, C, H, W] as ``root/split/<class>/<n>.JPEG`` (used by tests and benchmarks)."""
    from PIL import Image  # only when images are decoded: keeps config (and CLI start-up) light

    paths = []
    for n, (image, label) in enumerate(zip(images, labels)):
        folder = Path(root) / split / str(classes[int(label)])
        folder.mkdir(parents=True, exist_ok=True)
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        path = folder / f"{split}_{n:05d}{extension}"
        Image.fromarray(np.ascontiguousarray(array)).save(path, quality=quality)
        paths.append(path)
    return paths
