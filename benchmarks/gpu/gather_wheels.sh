#!/usr/bin/env bash
# The one step HERE (a machine with PyPI) before a GPU run on a machine without a package registry
# (benchmarks/gpu/run.sh): gathers what that machine's image lacks for the latency run into an ignored folder.
#
# The GPU image has torch + CUDA, triton, numpy, pandas, matplotlib, einops, safetensors, pyyaml, tqdm, pytest,
# filelock. The latency run needs only one more package: mamba-ssm, whose Triton SSD (all LinGen uses of it) is
# pure Python, built here as a py3-none-any wheel without its CUDA extensions. av, submitit and fvcore (missing
# there) are not imported by the latency run (tests/test_gpu_run.py runs it with them blocked).
#
# Usage:  benchmarks/gpu/gather_wheels.sh [DEST]        (DEST default .whl, ignored by .gitignore)
# Then carry DEST to the GPU machine with the working tree and run:  OUT=... benchmarks/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.whl}
PYTHON=${PYTHON:-python}
mkdir -p "$DEST"
rm -f "$DEST"/mamba_ssm-*.whl
MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation \
  --no-cache-dir -w "$DEST" mamba-ssm==2.3.2.post1
# the copy of the tree on the GPU machine has no .git: record which commit it is (run.sh puts it in the manifests)
if sha=$(git rev-parse HEAD 2>/dev/null); then
  [ -z "$(git status --porcelain --untracked-files=no)" ] || sha="$sha-dirty"
  echo "$sha" >"$DEST/SOURCE_COMMIT"
fi
ls -l "$DEST"
du -sh "$DEST"
