"""Sweeps: many runs from one spec, run in local processes or on Ray, skipping what is already done.

A spec is a base config plus axes whose product is taken, axes that are zipped together, and seeds:

    name: noise-sweep
    base: {dataset: digits, model: mlp-1x512, epochs: 300, stop_at_fit: true}
    axes: {label_noise: [0.0, 0.5, 1.0], model: [mlp-1x512, mlp-3x512]}
    zip: {inputs: [original, gaussian], lr: [0.01, 0.005]}
    seeds: [0, 1]

Every run is named by its config hash, so running a sweep again skips finished runs, resumes
interrupted ones from their checkpoints, and retries failed ones only when asked. The sweep's list of
runs is saved in the runs folder (``sweeps/NAME.json``) so that reports can find them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from rethinkgen import data, models
from rethinkgen.choices import PRESETS
from rethinkgen.config import RunConfig, setting_names
from rethinkgen.data.augment import settings_for
from rethinkgen.data.preprocess import crop_size_for
from rethinkgen.engine.ensemble import group_configs
from rethinkgen.engine.trainer import record_failure, resolve_device, with_arrays
from rethinkgen.errors import DamagedFile, RethinkgenError, shown, warn
from rethinkgen.experiments.executors import check_options, execute, import_ray
from rethinkgen.outcome import did_not_fit, fit_words
from rethinkgen.settings_file import read_mapping
from rethinkgen.store import RunStore, is_finished, read_summary, run_path, safe_name, write_json

SPEC_KEYS = ("name", "base", "axes", "zip", "seeds", "preset")
# rough training speeds (images/s at 3x28x28, batch 128, 2 CPU cores, torch 2.13) for --dry-run estimates
CPU_IMAGES_PER_SECOND = {"mlp-1x512": 13000, "mlp-3x512": 9000, "alexnet-small": 400,
                         "inception-small": 65, "inception-small-nobn": 65,
                         "inception-v3": 100}  # about 14 img/s at 3x75x75 (benchmarks/imagefolder.py), scaled
MAX_AUTO_ENSEMBLE = 32
DATASET_SHAPES = {  # (train size, test size, values per image after the default crop)
    "digits": (1347, 450, 64), "synthetic": (512, 256, 64), "mnist": (60000, 10000, 784),
    "fashion-mnist": (60000, 10000, 784), "cifar10": (50000, 10000, 2352), "cifar100": (50000, 10000, 2352),
    "imagefolder": (1281167, 50000, 3 * 299 * 299)}  # an image folder is estimated as ILSVRC 2012
EVAL_COST = 1 / 3  # an evaluation forward pass costs about a third of a training step per image
MAX_RUNS = 10_000  # runs one spec may expand to (the paper's largest preset has 33 per seed)
# a sweep's name names its manifest (sweeps/NAME.json) and its report figures: a plain file name


@dataclass
class SweepRun:
    """One run of a sweep.

    Args:
        label: how reports name the run, e.g. "random labels".
        config: its settings.
        group: preset-specific facts for reports, e.g. ``{"row": 3}``.
    """

    label: str          # how reports name this run, e.g. "random labels"
    config: RunConfig
    group: dict = field(default_factory=dict)  # preset-specific facts for reports, e.g. {"row": 3}


@dataclass
class Sweep:
    """A named list of runs, as a spec or a preset expands to.

    Args:
        name: names the manifest ``sweeps/NAME.json`` and the report's figures (a plain file name).
        runs: the runs.
        preset: the preset whose report section shows the runs (None: a plain table).
        scale: the preset's scale, when it is one.
    """

    name: str
    runs: list[SweepRun]
    preset: str | None = None
    scale: str | None = None

    def manifest(self) -> dict:
        """The sweep as saved in ``sweeps/NAME.json``: its runs' ids, labels, groups and configs."""
        return {"name": self.name, "preset": self.preset, "scale": self.scale, "created": time.time(),
                "runs": [{"run_id": r.config.run_id(), "label": r.label, "group": r.group,
                          "config": r.config.to_dict()} for r in self.runs]}


def load_spec(path: str | Path, overrides: dict | None = None) -> Sweep:
    """Read a YAML/JSON spec file and expand it into runs (validated, not yet checked against data).

    Args:
        path: the spec file.
        overrides: settings that replace the spec's base settings in every run.
    """
    path = Path(path)
    spec = read_mapping(path, "sweep spec")
    return expand(spec, default_name=path.stem, overrides=overrides, where=f"{path}: ")


def _mapping(spec: dict, key: str, where: str) -> dict:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise RethinkgenError(f"{where}'{key}' must be a mapping of setting names to values")
    return setting_names(value, f"{where}'{key}'")


def expand(spec: dict, default_name: str = "sweep", overrides: dict | None = None, where: str = "") -> Sweep:
    """A spec (a mapping, as in this module's docstring) expanded into its runs, each validated.

    Args:
        spec: the spec's keys (``SPEC_KEYS``).
        default_name: the sweep's name when the spec gives none.
        overrides: settings that replace the spec's base settings in every run.
        where: a prefix for error messages that says where the spec came from (e.g. its file).
    """
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise RethinkgenError(f"{where}unknown sweep key {shown(unknown[0])}; allowed: {', '.join(SPEC_KEYS)}")
    base = {**_mapping(spec, "base", where), **(overrides or {})}
    axes, zipped = _mapping(spec, "axes", where), _mapping(spec, "zip", where)
    known = set(RunConfig.__dataclass_fields__)
    for kind, values in (("axis", axes), ("zip axis", zipped)):
        for key, options in values.items():
            if key not in known:
                raise RethinkgenError(f"{where}unknown {kind} {shown(key)}; allowed: {', '.join(sorted(known))}")
            if not isinstance(options, list) or not options:
                raise RethinkgenError(f"{where}{kind} {shown(key)} needs a non-empty list of values, "
                                      f"got {shown(options)}")
    both = sorted(set(axes) & set(zipped))
    if both:
        raise RethinkgenError(f"{where}{shown(both[0])} is both an axis and a zip axis; give it in one of them")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise RethinkgenError(f"{where}zip axes must have equal lengths, got "
                              + ", ".join(f"{k}: {len(v)}" for k, v in zipped.items()))
    if "seed" in axes or "seed" in zipped:  # each run's seed comes from 'seeds'
        raise RethinkgenError(f"{where}seed cannot be an axis or a zip axis; list the seeds under 'seeds'")
    seeds = spec.get("seeds", [base.get("seed", 0)])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise RethinkgenError(f"{where}seeds must be a non-empty list of non-negative integers, got {shown(seeds)}")
    zipped_rows = [dict(zip(zipped, values)) for values in zip(*zipped.values())] or [{}]
    count = math.prod(len(v) for v in axes.values()) * len(zipped_rows) * len(seeds)
    if count > MAX_RUNS:
        raise RethinkgenError(f"{where}the sweep expands to {count:,} runs; the limit is {MAX_RUNS:,}")
    runs = []
    for combination in itertools.product(*axes.values()):
        for zipped_row in zipped_rows:
            for seed in seeds:
                varying = {**dict(zip(axes, combination)), **zipped_row}
                label = ", ".join(f"{k}={v}" for k, v in varying.items()) or "base"
                try:
                    config = RunConfig.from_mapping({**base, **varying, "seed": seed})
                except RethinkgenError as error:
                    raise RethinkgenError(f"{where}{error}" + (f" (run {shown(label)})" if varying else "")) from None
                runs.append(SweepRun(label, config, {"seed": seed}))
    if not runs:
        raise RethinkgenError(f"{where}the sweep expands to zero runs")
    name = safe_name(str(spec.get("name") or default_name), f"{where}sweep name")  # it names sweeps/NAME.json
    return Sweep(name, runs, preset=_report_as(spec.get("preset"), where))


def _report_as(preset, where: str) -> str | None:
    """A spec's ``preset``: which preset's report section shows its runs (None: a plain table)."""
    allowed = [*PRESETS, "demo"]
    if preset is not None and preset not in allowed:
        raise RethinkgenError(f"{where}unknown preset {shown(preset)} (the report section to show the runs in); "
                              f"allowed: {', '.join(allowed)}")
    return preset


def preflight(sweep: Sweep, dataset: data.Dataset | None = None) -> dict[int, str]:
    """Check that every run can be built (data found, crop and pad fit the images, model takes the input
    shape) before any starts; raise RethinkgenError for the first that cannot. A user's model whose factory
    raises fails its own runs only: returns {index in ``sweep.runs``: message} for those. ``dataset``: the
    arrays that runs on ``arrays:NAME`` train on.

    Args:
        sweep: the runs to check.
        dataset: the arrays that runs on ``arrays:NAME`` train on (None: none).
    """
    datasets, built, failures = {}, {}, {}
    for i, run in enumerate(sweep.runs):
        c = run.config.resolved()
        key = (c.dataset, c.data_dir, c.download, c.image_size, c.data_hash, *data.huggingface.options_of(c).items())
        if key not in datasets and dataset is not None and data.arrays.is_in_memory(c.dataset):
            datasets[key] = dataset
        elif key not in datasets:
            datasets[key] = data.load_for_run(c.dataset, c.data_dir, c.download, c.image_size,
                                              hf_options=data.huggingface.options_of(c))
        dataset = datasets[key]
        for size, available, what in ((c.subset, len(dataset.y_train), "subset"),
                                      (c.test_subset, len(dataset.y_test), "test_subset")):
            if size is not None and size > available:
                raise RethinkgenError(f"run '{run.label}': {what} {size} exceeds the {available} examples of {c.dataset}")
        channels, height, width = dataset.image_shape
        try:
            crop = settings_for(c, height).crop_size
            shape = (channels, crop, crop) if crop else (channels, height, width)
            model = (c.model, shape, dataset.num_classes, c.dropout)
            if model not in built:
                built[model] = _build_problem(c.model, shape, dataset.num_classes, c.dropout)
        except RethinkgenError as error:
            raise RethinkgenError(f"run '{run.label}': {error}") from None
        if built[model] is not None:
            failures[i] = built[model]
    return failures


def _build_problem(name: str, shape: tuple, num_classes: int, dropout: float) -> str | None:
    """Build the model once: None if it builds, the message if a user's factory raised (other refusals raise)."""
    try:
        models.create_run_model(name, shape, num_classes, dropout)
    except models.ModelFactoryError as error:
        return str(error)
    return None


def estimate_seconds(config: RunConfig) -> float | None:
    """A rough upper bound of a run's CPU time from the measured speeds above (runs that stop at fit end
    sooner); None for a model without a measured speed (a user's model, or a family member such as mlp-1x64)."""
    if config.model not in models.model_names():
        return None
    n_train, n_test, values = DATASET_SHAPES.get(config.dataset, (50000, 10000, 2352))
    if config.image_size is not None:
        side = crop_size_for(config.image_size, config.crop) or config.image_size
        values = 3 * side * side
    n_train = config.subset or n_train
    n_test = config.test_subset or n_test
    rate = CPU_IMAGES_PER_SECOND.get(config.model, 400) * 2352 / values
    return config.epochs * (n_train + EVAL_COST * (n_train + n_test)) / rate


def run_status(runs_dir: Path, run_id: str) -> dict | None:
    """The run's summary, None if it has none; DamagedFile if its summary.json cannot be read."""
    return read_summary(run_path(runs_dir, run_id))


@dataclass
class SweepOutcome:
    """What ``run_sweep`` did.

    Args:
        ran: (run, status, message) for each run trained (or failed before training).
        skipped: (run, its existing status) for each run left alone.
        not_fitted: (run, why in words) for each complete run that did not fit its training labels.
    """

    ran: list[tuple[SweepRun, str, str]] = field(default_factory=list)       # (run, status, message)
    skipped: list[tuple[SweepRun, str]] = field(default_factory=list)        # (run, existing status)
    not_fitted: list[tuple[SweepRun, str]] = field(default_factory=list)     # (run, why): complete, did not fit

    def lines(self) -> list[str]:
        """The outcome in words: a count line, then one line per run that did not complete or did not fit."""
        statuses = [status for _, status, _ in self.ran]
        unreadable = sum(status == UNREADABLE for _, status in self.skipped)
        lines = [f"{len(self.ran)} run(s) trained: {statuses.count('complete')} complete, "
                 f"{statuses.count('diverged')} diverged, {statuses.count('failed')} failed; "
                 f"{len(self.skipped) - unreadable} skipped (already finished)"
                 + (f"; {unreadable} skipped (summary.json damaged, see the warnings)" if unreadable else "")
                 + (f"; {statuses.count('busy')} left to another process training them" if 'busy' in statuses else "")
                 + (f"; {len(self.not_fitted)} complete run(s) did not fit their training labels within their epochs"
                    if self.not_fitted else "")]
        for run, status, message in self.ran:
            if status != "complete":
                lines.append(f"  {status}: {run.label} [{run.config.run_id()}]: {message}")
        for run, words in self.not_fitted:
            lines.append(f"  complete, {words}: {run.label} [{run.config.run_id()}]")
        return lines

    @property
    def failed(self) -> int:
        """Runs that failed, and runs left alone because their summary cannot be read."""
        return sum(status == "failed" for _, status, _ in self.ran) + sum(s == UNREADABLE for _, s in self.skipped)


UNREADABLE = "unreadable"  # a run whose summary.json is damaged


def ensemble_size(value: str | int, runs: int, workers: int) -> int:
    """``--ensemble``: a number, or ``auto``: enough runs per ensemble to give every worker one (at most 32).

    Args:
        value: ``--ensemble``'s value: a whole number >= 1 or ``auto``.
        runs: the runs to train.
        workers: the processes that train them.
    """
    if value == "auto":
        return max(1, min(MAX_AUTO_ENSEMBLE, -(-runs // workers)))
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise RethinkgenError(f"ensemble {value!r} must be a whole number >= 1 or 'auto'") from None
    if size < 1:
        raise RethinkgenError(f"ensemble {value!r} must be a whole number >= 1 or 'auto'")
    return size


def run_sweep(sweep: Sweep, runs_dir: str | Path, workers: int | None = None, retry_failed: bool = False,
              progress: bool = True, executor: str = "local", runs_per_gpu: int | None = None,
              cpus_per_run: int | None = None, address: str | None = None, ensemble: str | int = 1,
              restart: bool = False, dataset: data.Dataset | None = None) -> SweepOutcome:
    """Run every run of ``sweep`` not yet finished, here, in local processes or on Ray.

    A run whose summary.json cannot be read is named in a warning and left alone; the others go on.
    Finished runs (complete or diverged) are never touched.

    Args:
        sweep: the runs, from ``load_spec``, ``expand`` or a preset.
        runs_dir: the runs folder; the sweep's list of runs is saved there as ``sweeps/NAME.json``.
        workers: local processes training at once (None: one, in this process); see executors.py.
        retry_failed: train failed runs again (resuming from their checkpoints).
        progress: show a progress bar over the runs.
        executor: ``"local"`` or ``"ray"``.
        runs_per_gpu: runs that share one GPU at once (see executors.py).
        cpus_per_run: CPU cores each run may use (see executors.py).
        address: the Ray cluster's address (``executor="ray"``).
        ensemble: compatible runs trained at a time as one batched model (see engine/ensemble.py): a number,
            or ``"auto"`` (see ``ensemble_size``).
        restart: train every unfinished run (failed and damaged ones included) from the start, discarding
            its checkpoint and logs.
        dataset: your arrays (``rethinkgen.data.from_arrays``) for every run, trained in this process (one
            local worker).

    Returns:
        The runs trained, skipped and not fitted, with their statuses.
    """
    check_options(executor, workers, runs_per_gpu, cpus_per_run, address)
    if dataset is not None:
        sweep = _with_arrays(sweep, dataset, executor)
    safe_name(sweep.name, "sweep name")
    if executor == "ray":
        import_ray()  # before the data are loaded: a missing Ray is said at once
    elif runs_per_gpu is None:  # the runs train here, on the devices they name: a missing GPU is said once
        for device in sorted({run.config.device for run in sweep.runs}):
            resolve_device(device)
    failures = preflight(sweep, dataset)  # before anything is written
    store = RunStore(runs_dir)
    manifest = store.manifest_path(sweep.name)
    manifest.parent.mkdir(exist_ok=True)
    write_json(manifest, sweep.manifest())
    outcome = SweepOutcome()
    todo = _runs_to_train(sweep, store, failures, retry_failed, restart, outcome)
    size = ensemble_size(ensemble, len(todo), workers or 1)  # checked before Ray or workers start
    index_of = {id(run.config): i for i, run in enumerate(todo)}
    groups = [[index_of[id(config)] for config in group] for group in group_configs([run.config for run in todo], size)]
    results = execute([run.config.to_dict() for run in todo], str(store.root), executor, workers=workers,
                      runs_per_gpu=runs_per_gpu, cpus_per_run=cpus_per_run, address=address, groups=groups,
                      restart=restart, dataset=dataset)
    _collect(results, todo, outcome, progress, sweep.name)
    order = {id(run): i for i, run in enumerate(sweep.runs)}
    outcome.ran.sort(key=lambda item: order[id(item[0])])
    outcome.not_fitted = unfitted(store.root, [run for run, status, _ in outcome.ran if status == "complete"])
    return outcome


def _with_arrays(sweep: Sweep, dataset, executor: str) -> Sweep:
    """The sweep with every run set to train on ``dataset`` (arrays given in Python; local executor only)."""
    if executor != "local":
        raise RethinkgenError("arrays given in Python train in this process only, not on Ray; save them as an "
                              ".npz file (numpy.savez) and give its path as the runs' dataset")
    data_hash = data.arrays.arrays_sha256(dataset)
    return dataclasses.replace(sweep, runs=[dataclasses.replace(run, config=with_arrays(run.config, dataset, data_hash))
                                            for run in sweep.runs])


def _runs_to_train(sweep: Sweep, store: RunStore, failures: dict[int, str], retry_failed: bool, restart: bool,
                   outcome: SweepOutcome) -> list[SweepRun]:
    """The runs of ``sweep`` to train, each once. Runs finished, failed (unless retried), damaged (unless
    restarted) or repeated go to ``outcome.skipped``; runs whose model cannot be built (``failures``, from
    ``preflight``) are recorded as failed in the store and in ``outcome.ran``."""
    todo, seen = [], set()
    for i, run in enumerate(sweep.runs):
        run_id = run.config.run_id()
        try:
            summary = run_status(store.root, run_id)
        except DamagedFile as damaged:
            if not restart and run_id not in seen:
                warn(f"{damaged}; run {run_id} ({run.label}) is left alone: run the sweep again with --restart to "
                     f"train it from the start")
                outcome.skipped.append((run, UNREADABLE))
                seen.add(run_id)
                continue
            summary = None
        status = summary.get("status") if summary else None
        if is_finished(status) or (status == "failed" and not (retry_failed or restart)) \
                or run_id in seen:
            outcome.skipped.append((run, status or "duplicate"))
        elif i in failures:  # its model could not be built: it fails, recorded as any failed run is
            record_failure(store, run.config, failures[i])
            outcome.ran.append((run, "failed", failures[i]))
        else:
            todo.append(run)
        seen.add(run_id)
    return todo


def _collect(results, todo: list[SweepRun], outcome: SweepOutcome, progress: bool, name: str) -> None:
    """Record each ``(index into todo, status, message)`` of ``results`` as it arrives, with a progress bar."""
    bar = tqdm(total=len(todo), disable=not progress, desc=f"sweep {name}", unit="run", dynamic_ncols=True)
    try:
        for i, status, message in results:
            outcome.ran.append((todo[i], status, message))
            bar.set_postfix_str(todo[i].label)
            bar.update()
    finally:
        bar.close()


def unfitted(runs_dir: Path, runs: list[SweepRun]) -> list[tuple[SweepRun, str]]:
    """The complete runs among ``runs`` that did not fit their training labels, each with why (in words)."""
    found = []
    for run in runs:
        try:
            summary = run_status(runs_dir, run.config.run_id()) or {}
        except DamagedFile:
            continue
        if did_not_fit("complete", summary):
            found.append((run, fit_words(summary, run.config.fit_threshold)))
    return found
