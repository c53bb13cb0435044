#!/usr/bin/env bash
# Install scgrad (editable) with its test extras, keeping the torch you already have.
# With no torch installed, torch 2.13.0 is installed first: on the project's CPU machines pip
# takes the local CPU wheel, and an unpinned torch can never pull gigabytes of CUDA packages.
# Usage: bash scripts/install.sh [EXTRAS]   (default extras: rl,atari,test,examples; e.g. "all")
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."
extras="${1:-rl,atari,test,examples}"
python -m pip --version >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install --quiet "torch==2.13.0"
fi
python -m pip install --quiet -e ".[${extras}]"
python -c "import torch, scgrad; print(f'scgrad {scgrad.__version__} installed with torch {torch.__version__}')"
