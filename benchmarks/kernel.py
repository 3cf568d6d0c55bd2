"""Benchmark of minimum-norm kernel interpolation, K alpha = Y, on Fashion-MNIST's raw pixels.

For each n and solver path: seconds (build K, factorize, solve or refine), the factorization's GFLOP/s
(n^3 / 3 flops) against the float32 GEMM rate measured in the same process just before, the relative
residual, iterations, test error and the peak resident memory. Each (n, path) runs in its own process so
that its peak memory is its own. Also, on request: the conditioning of K for each bandwidth rule
(--conditioning N) and BLAS rates of torch (MKL) against numpy/scipy (OpenBLAS) (--blas N).

    PYTHONPATH=src python benchmarks/kernel.py --sizes 5000 10000 20000 --paths cholesky mixed old-cg
    PYTHONPATH=src python benchmarks/kernel.py --sizes 60000 --paths auto
    PYTHONPATH=src python benchmarks/kernel.py --sizes --conditioning 5000 --blas 8000

Paths: auto (what `interpolate` picks), cholesky (float64, blocked factorization), mixed (float32 factor
+ float64 CG, blocked factorization), lapack (mixed with one LAPACK potrf call), cholesky-lapack, and old-cg: the
Nystrom-preconditioned CG on a stored float32 K that the kernel command used before, capped at
--cg-iterations iterations (it is reported with the residual it reached).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

PATHS = ("auto", "cholesky", "mixed", "lapack", "cholesky-lapack", "old-cg")


def machine() -> dict:
    import torch

    with open("/proc/cpuinfo") as cpuinfo, open("/proc/meminfo") as meminfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                     platform.processor())
        memory = next((int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal")), 0)
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gib": round(memory / 2 ** 30, 1), "torch": torch.__version__,
            "date": datetime.datetime.now().isoformat(timespec="minutes"), "command": " ".join(sys.argv),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}


def load() -> float:
    """The 1-minute load average: how busy the machine was (2 = both cores busy)."""
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


def gemm_rate(dtype_name: str = "float32", size: int = 4096, repeats: int = 3) -> float:
    """GFLOP/s of torch's square GEMM, best of ``repeats``."""
    import torch

    dtype = getattr(torch, dtype_name)
    A, B = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    C = torch.empty_like(A)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(A, B, out=C)
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


def one(n: int, path: str, cg_iterations: int, n_test: int) -> dict:
    """One solve in this process (run as a child): the row of the table."""
    from rethinkgen.theory.experiments import load_features, peak_memory_bytes
    from rethinkgen.theory.kernels import interpolate, one_hot

    X, y, X_test, y_test, _ = load_features("fashion-mnist", n, n_test, "raw")
    gemm = gemm_rate()
    options = {"auto": {}, "cholesky": {"solver": "cholesky", "factorization": "blocked"},
               "mixed": {"solver": "mixed", "factorization": "blocked"},
               "lapack": {"solver": "mixed", "factorization": "lapack"},
               "cholesky-lapack": {"solver": "cholesky", "factorization": "lapack"},
               "old-cg": {"solver": "cg", "max_iter": cg_iterations}}[path]
    before = load()
    peak_memory_bytes(reset=True)
    started = time.perf_counter()
    fit = interpolate(X, one_hot(y, 10), bandwidth="recipe", progress=True, **options)
    seconds = time.perf_counter() - started
    peak = peak_memory_bytes()
    factorize = fit.phases.get("factorize")
    return {"n": len(y), "path": path, "solver": fit.solver, "precision": fit.precision, "seconds": seconds,
            "phases": fit.phases, "factorize_gflops": n ** 3 / 3 / factorize / 1e9 if factorize else None,
            "gemm_float32_gflops": gemm, "relative_residual": fit.relative_residual, "converged": fit.converged,
            "iterations": fit.iterations, "train_error": float((fit.fitted.argmax(1).numpy() != y).mean()),
            "test_error": float((fit.predict(X_test) != y_test).mean()), "n_test": len(y_test),
            "peak_memory_gib": peak / 2 ** 30, "estimated_peak_gib": fit.estimated_peak_bytes / 2 ** 30,
            "load_before": before, "load_after": load(), "threads": machine()["torch_threads"]}


def conditioning(n: int) -> list[dict]:
    """Smallest and largest eigenvalue of K (float64, n points of Fashion-MNIST) for each bandwidth rule,
    and the iterations the mixed-precision solver needs."""
    import torch

    from rethinkgen.theory.experiments import load_features
    from rethinkgen.theory.kernels import (
        _as_tensor,
        choose_bandwidth,
        interpolate,
        kernel_matrix,
        one_hot,
    )

    X, y, *_ = load_features("fashion-mnist", n, 100, "raw")
    rows = []
    for rule in ("recipe", "half-median", "median"):
        bandwidth = choose_bandwidth(X, rule)
        eigen = torch.linalg.eigvalsh(kernel_matrix(_as_tensor(X), "rbf", bandwidth))
        fit = interpolate(X, one_hot(y, 10), bandwidth=bandwidth, solver="mixed")
        rows.append({"n": n, "rule": rule, "bandwidth": bandwidth, "smallest": float(eigen[0]),
                     "largest": float(eigen[-1]), "condition": float(eigen[-1] / eigen[0]),
                     "mixed_iterations": fit.iterations, "shift": fit.shift, "residual": fit.relative_residual})
    return rows


def _best(run, repeats: int = 2) -> float:
    """The shortest of ``repeats`` timings of ``run()``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _blas_rates(n: int, name: str) -> list[dict]:
    import numpy as np
    import torch
    from scipy.linalg import blas as sblas, lapack

    dtype = getattr(torch, name)
    A, B = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    S = torch.randn(n, 64, dtype=dtype)
    S = S @ S.T / 64
    S.diagonal().add_(1.0)
    C, M = torch.empty_like(A), torch.empty_like(A)
    info = torch.zeros((), dtype=torch.int32)
    L = torch.linalg.cholesky(S)
    R = torch.randn(n, n // 2, dtype=dtype)
    An, Bn, Ln, Rn = A.numpy(), B.numpy(), L.numpy(), np.asfortranarray(R.numpy())
    potrf = lapack.spotrf if name == "float32" else lapack.dpotrf
    trsm = sblas.strsm if name == "float32" else sblas.dtrsm

    def torch_potrf():
        M.copy_(S)
        torch.linalg.cholesky_ex(M.mT, upper=True, out=(M.mT, info))

    def scipy_potrf():
        M.copy_(S)
        potrf(M.numpy().T, lower=1, overwrite_a=1, clean=0)

    copy = _best(lambda: M.copy_(S))
    timings = (("torch", "gemm", _best(lambda: torch.mm(A, B, out=C)), 2 * n ** 3),
               ("scipy", "gemm", _best(lambda: np.matmul(An, Bn, out=C.numpy())), 2 * n ** 3),
               ("torch", "potrf", _best(torch_potrf) - copy, n ** 3 / 3),
               ("scipy", "potrf", _best(scipy_potrf) - copy, n ** 3 / 3),
               ("torch", "trsm", _best(lambda: torch.linalg.solve_triangular(L, R, upper=False)), n ** 2 * (n // 2)),
               ("scipy", "trsm", _best(lambda: trsm(1.0, Ln.T, Rn, lower=0, trans_a=1)), n ** 2 * (n // 2)))
    return [{"n": n, "dtype": name, "library": library, "operation": operation, "gflops": flops / seconds / 1e9,
             "load": load()} for library, operation, seconds, flops in timings]


def blas(n: int) -> list[dict]:
    """GFLOP/s of GEMM, potrf and trsm (n x n, n/2 right-hand sides) through torch and through scipy."""
    return _blas_rates(n, "float32") + _blas_rates(n, "float64")


def child(arguments: list[str], drop: tuple[str, ...] = ()) -> dict | list:
    """Run this script with ``arguments`` in a fresh process (without the environment variables ``drop``)."""
    env = {key: value for key, value in os.environ.items() if key not in drop}
    output = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, env=env,
                            check=False)
    if output.returncode:
        return {"error": output.stderr.strip().splitlines()[-1] if output.stderr.strip() else output.returncode}
    return json.loads(output.stdout.strip().splitlines()[-1])


def markdown(results: dict) -> str:
    """The results as Markdown tables (machine line, solves, conditioning, BLAS)."""
    m = results["machine"]
    lines = [(f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, {m['memory_gib']} GiB, torch "
              f"{m['torch']}, {m['date']}; `python {m['command']}`"), "",
             ("| n | path | solver | seconds | phases (s) | factorize GFLOP/s | float32 GEMM GFLOP/s | % of GEMM "
              "| residual | iterations | test error | peak memory | load (1 min) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["solves"]:
        if "error" in r:
            lines.append(f"| | | error: {r['error']} |")
            continue
        phases = " / ".join(f"{v:.1f}" for v in r["phases"].values())
        rate = r["factorize_gflops"]
        share = f"{rate / r['gemm_float32_gflops']:.0%}" if rate else "-"
        residual = f"{r['relative_residual']:.1e}" + ("" if r["converged"] else " (not converged)")
        lines.append(f"| {r['n']:,} | {r['path']} | {r['solver']} | {r['seconds']:.1f} | {phases} | "
                     f"{rate and f'{rate:.0f}' or '-'} | {r['gemm_float32_gflops']:.0f} | {share} | {residual} | "
                     f"{r['iterations']} | {r['test_error']:.2%} | {r['peak_memory_gib']:.2f} GiB | "
                     f"{r['load_before']:.1f}-{r['load_after']:.1f} |")
    if results.get("conditioning"):
        lines += ["", "| n | bandwidth rule | s | smallest eigenvalue | largest | condition number | mixed iterations |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['n']:,} | {r['rule']} | {r['bandwidth']:.3g} | {r['smallest']:.3g} | {r['largest']:.4g} | "
                  f"{r['condition']:.3g} | {r['mixed_iterations']} |" for r in results["conditioning"]]
    if results.get("blas"):
        lines += ["", "| size | dtype | operation | library | GFLOP/s | load |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['n']:,} | {r['dtype']} | {r['operation']} | {r['library']} | {r['gflops']:.0f} | "
                  f"{r['load']:.1f} |" for r in sorted(results["blas"], key=lambda r: (r["dtype"], r["operation"]))]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[5000, 10000, 20000])
    parser.add_argument("--paths", nargs="+", default=["cholesky", "mixed", "old-cg"], choices=PATHS)
    parser.add_argument("--cg-iterations", type=int, default=100, help="cap of the old CG path (default: 100)")
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--conditioning", type=int, metavar="N", help="eigenvalues of K at n = N per bandwidth rule")
    parser.add_argument("--blas", type=int, metavar="N", help="torch against scipy BLAS rates at size N")
    parser.add_argument("--out", help="JSON file for the results (default: print only)")
    parser.add_argument("--markdown", metavar="JSON", help="print the tables of an earlier --out file and exit")
    parser.add_argument("--one", nargs=2, metavar=("N", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--section", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown:
        with open(args.markdown) as handle:
            print(markdown(json.load(handle)))
        return
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args.cg_iterations, args.n_test)))
        return
    if args.section:
        print(json.dumps(conditioning(args.conditioning) if args.section == "conditioning" else blas(args.blas)))
        return
    results = {"machine": machine(), "solves": [], "conditioning": [], "blas": []}
    print(json.dumps(results["machine"]))
    for n in args.sizes:
        for path in args.paths:
            row = child(["--one", str(n), path, "--cg-iterations", str(args.cg_iterations), "--n-test",
                         str(args.n_test)])
            results["solves"].append(row)
            print(json.dumps(row), flush=True)
    if args.conditioning:
        results["conditioning"] = child(["--section", "conditioning", "--conditioning", str(args.conditioning)])
        print(json.dumps(results["conditioning"]), flush=True)
    if args.blas:
        results["blas"] = child(["--section", "blas", "--blas", str(args.blas)])
        without = child(["--section", "blas", "--blas", str(args.blas)], drop=("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
        results["blas"] += [{**row, "library": row["library"] + " (OPENBLAS_* unset)"} for row in without
                            if row["library"] == "scipy"] if isinstance(without, list) else [without]
        print(json.dumps(results["blas"]), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
