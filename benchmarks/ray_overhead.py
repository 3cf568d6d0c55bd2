"""What Ray costs a small sweep: the same sweep with the local executor and on a local Ray runtime.

    pip install -e '.[ray]' && OMP_NUM_THREADS=1 python benchmarks/ray_overhead.py

Two sweeps of 4 runs of mlp-1x512 on digits: "tiny" (100 training images, 2 epochs: nearly all overhead) and
"small" (all 1,347 training images, 20 epochs). Each is timed with the local executor (1 and 2 workers) and on
a local Ray runtime of 2 CPUs, cold (including starting Ray and its worker processes, as one
`rethinkgen sweep --executor ray` does) and warm (the same runtime again, into a fresh runs folder).
Every timing trains into a fresh folder, so nothing is skipped; one warm-up sweep runs first in this process.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from rethinkgen.experiments.sweep import expand, run_sweep

SWEEPS = {
    "tiny": {"dataset": "digits", "subset": 100, "test_subset": 50, "epochs": 2},
    "small": {"dataset": "digits", "epochs": 20},
}


def timed(sweep, root: Path, name: str, **options) -> float:
    started = time.perf_counter()
    outcome = run_sweep(sweep, root / name, progress=False, **options)
    seconds = time.perf_counter() - started
    assert [status for _, status, _ in outcome.ran] == ["complete"] * len(sweep.runs), outcome.lines()
    return seconds


def main() -> None:
    import ray

    root = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    rows = []
    # warm-up: the first sweep of a process pays for loading the data and the trainer; keep that out
    timed(expand({"name": "warm-up", "base": SWEEPS["tiny"]}), root, "warm-up")
    for name, base in SWEEPS.items():
        sweep = expand({"name": name, "base": base, "axes": {"label_noise": [0.0, 0.3, 0.6, 1.0]}})
        local1 = timed(sweep, root, f"{name}-local1")
        local2 = timed(sweep, root, f"{name}-local2", workers=2)
        started = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        start_seconds = time.perf_counter() - started
        cold = start_seconds + timed(sweep, root, f"{name}-ray-cold", executor="ray")
        warm = timed(sweep, root, f"{name}-ray-warm", executor="ray")
        started = time.perf_counter()
        ray.shutdown()
        cold += time.perf_counter() - started
        rows.append((name, local1, local2, cold, start_seconds, warm))
    print("| sweep (4 runs) | local, 1 worker | local, 2 workers | Ray cold (of which ray.init) | Ray warm |")
    print("|---|---:|---:|---:|---:|")
    for name, local1, local2, cold, start, warm in rows:
        print(f"| {name} | {local1:.1f} s | {local2:.1f} s | {cold:.1f} s ({start:.1f} s) | {warm:.1f} s |")


if __name__ == "__main__":
    main()
