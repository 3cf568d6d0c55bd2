#!/usr/bin/env bash
# The GPU check and benchmark (benchmarks/gpu.py) from the repository root, with the package on the path.
# Usage: bash benchmarks/gpu.sh [--smoke] [--budget SECONDS] [--models ...]; PYTHON=... picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" benchmarks/gpu.py "$@"
