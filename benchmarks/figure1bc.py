"""Time to reproduce the MLP part of Figure 1b/1c at tiny scale, end to end, four ways.

``rethinkgen sweep --preset figure1bc --scale tiny --models mlp-1x512`` (11 noise levels, 256 digits, stop at
fit) run through the command line into a fresh runs folder: one run after another (as before ensembles
existed), ``--ensemble auto``, ``--workers 2``, and both. Each way's wall time includes starting Python,
and the script checks that every way reached the same steps to fit at every noise level.

Run: ``python benchmarks/figure1bc.py`` (about 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from throughput import machine  # noqa: E402

from rethinkgen.results import load  # noqa: E402

WAYS = {
    "one after another": [],
    "--ensemble auto": ["--ensemble", "auto"],
    "--workers 2": ["--workers", "2"],
    "--workers 2 --ensemble auto": ["--workers", "2", "--ensemble", "auto"],
}


def time_way(extra: list[str], folder: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "rethinkgen", "sweep", "--preset", "figure1bc", "--scale", "tiny",
               "--models", "mlp-1x512", "--out", str(folder), "--quiet", *extra]
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
    steps = {name: fit for name, (_, fit) in results.items()}
    reference = steps["one after another"]
    same = all(fit == reference for fit in steps.values())
    print("steps to fit by noise level:", {round(k, 1): v for k, v in sorted(reference.items())})
    print("same steps to fit every way:", "yes" if same else f"NO: {steps}")


if __name__ == "__main__":
    main()
