"""Time to reproduce the MLP part of Figure 1b/1c at tiny scale, end to end, four ways.

``rethinkgen sweep --preset figure1bc --scale tiny --models mlp-1x512`` (11 noise levels, 256 digits, stop at
fit) run through the command line into a fresh runs folder: one run after another (as before ensembles
existed), ``--ensemble auto``, ``--workers 2``, and both. Each way's wall time includes starting Python,
and the script lists the noise levels where a way's steps to fit differ from one after another (in
float32 a batched sum can tip a run's fit by an epoch).

Run: ``python benchmarks/figure1bc.py`` (about 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from throughput import machine  # noqa: E402

from rethinkgen.store import load  # noqa: E402

WAYS = {
    "one after another": [],
    "--ensemble auto": ["--ensemble", "auto"],
    "--workers 2": ["--workers", "2"],
    "--workers 2 --ensemble auto": ["--workers", "2", "--ensemble", "auto"],
}


def time_way(extra: list[str], folder: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "rethinkgen", "sweep", "--preset", "figure1bc", "--scale", "tiny",
               "--models", "mlp-1x512", "--runs", str(folder), "--quiet", *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    frame = load(folder)
    return seconds, dict(zip(frame["label_noise"], frame["steps_to_fit"]))


def main() -> None:
    print(machine())
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for name, extra in WAYS.items():
            results[name] = time_way(extra, Path(root) / name.replace(" ", "_"))
            seconds = results[name][0]
            print(f"{name:<30} {seconds:7.1f} s  ({results['one after another'][0] / seconds:.2f}x faster than "
                  f"one after another)", flush=True)
    reference = results["one after another"][1]
    print("steps to fit by noise level (one after another):", {round(k, 1): v for k, v in sorted(reference.items())})
    for name, (_, fit) in results.items():  # float32: a batched sum may tip a run's fit by an epoch
        differ = {round(k, 1): (reference[k], fit[k]) for k in sorted(reference)
                  if not (reference[k] == fit[k] or (math.isnan(reference[k]) and math.isnan(fit[k])))}
        print(f"  {name:<30} differs at: {differ or 'none'}")


if __name__ == "__main__":
    main()
