#!/usr/bin/env bash
# The one step HERE (a machine with PyPI) before a GPU run on a machine without a package registry
# (benchmarks/gpu/run.sh): gathers what that machine's image lacks for the latency run into an ignored folder.
#
# The GPU image has torch + CUDA, triton, numpy, pandas, matplotlib, einops, safetensors, pyyaml, tqdm, pytest,
# filelock. The latency run needs only one more package: mamba-ssm, whose Triton SSD (all LinGen uses of it) is
# pure Python, built here as a py3-none-any wheel without its CUDA extensions. av, submitit and fvcore (missing
# there) are not imported by the latency run (tests/gpu/test_gpu_run.py runs it with them blocked).
#
# mamba-ssm's setup.py imports torch and needs setuptools + wheel in the building interpreter: PYTHON (default:
# the project's .venv/bin/python, else python3) is used when it has them, else a throwaway virtual environment
# with the CPU wheel of torch is made for the build (about a minute; nothing else is touched).
#
# Usage:  benchmarks/gpu/gather_wheels.sh [DEST]        (DEST default .whl, ignored by .gitignore)
# Then carry DEST to the GPU machine with the working tree and run there:
#         OUT=... EVALKIT_GIT_SHA=$(git rev-parse HEAD) benchmarks/gpu/run.sh
# (on this project's device machine: the call names .whl in its carry list)
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.whl}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)
fi
mkdir -p "$DEST"
rm -f "$DEST"/mamba_ssm-*.whl "$DEST"/SOURCE_COMMIT
if ! "$PYTHON" -c "import torch, setuptools, wheel" 2>/dev/null; then
  BUILD_ENV=$(mktemp -d)
  trap 'rm -rf "$BUILD_ENV"' EXIT
  echo "gather_wheels: $PYTHON lacks torch / setuptools / wheel: building in a throwaway venv ($BUILD_ENV)" >&2
  python3 -m venv "$BUILD_ENV"
  "$BUILD_ENV/bin/python" -m pip install -q --upgrade pip
  # the CPU wheel of torch first (a plain `torch` would pull several GB of CUDA packages)
  "$BUILD_ENV/bin/python" -m pip install -q torch==2.13.0 setuptools wheel packaging ninja
  PYTHON="$BUILD_ENV/bin/python"
fi
MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation \
  --no-cache-dir -w "$DEST" mamba-ssm==2.3.2.post1
ls -l "$DEST"
du -sh "$DEST"
