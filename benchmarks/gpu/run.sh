#!/usr/bin/env bash
# The GPU run of every latency claim of the paper, as ONE command on a machine with a GPU and no package registry
# (the project's GPU machine: torch/triton preinstalled; what it lacks comes as wheels gathered beforehand by
# benchmarks/gpu/gather_wheels.sh). It installs nothing into the system: the wheels go into a --target folder
# and the project runs from this working tree via PYTHONPATH.
#
#   1. install the wheels:  pip install --no-index --no-deps --target $SITE $WHEELS/*.whl   (no registry needed)
#   2. the gpu pytest group (fused SSD vs reference fp32/bf16, SDPA backends, TESA split on flash)
#   3. benchmarks/gpu/parity.py: the measured errors and the kernels each attention / scan actually used
#   4. python -m evalkit sweep paper_latency --budget-s <what is left of CALL_S>  (experiments/paper_latency.yaml)
#   5. the run folder packed as one tarball, and a short latency table printed last
#
# Usage:  OUT=/some/dir benchmarks/gpu/run.sh [--smoke]
#   --smoke     tiny models (CPU is fine): the same steps end to end, for tests/test_gpu_run.py
# Environment (defaults):
#   OUT         where the results go (required): 6 files, flat (log.txt, gpu-tests.txt, parity.json, sweep.txt,
#               table.txt, paper_latency-run.tar.gz: the run folder for `python -m evalkit report --publish`)
#   CALL_S      seconds the whole command may take (540: a 9-minute call; 150 with --smoke)
#   TAIL_S      seconds kept for packing and the table after the sweep (25)
#   WHEELS      folder of wheels to install (.whl); absent or empty: nothing is installed
#   SITE        the --target folder (/tmp/evalkit-site)
#   PYTHON      the interpreter (python3)
#   RUNS_ROOT   where the sweep's run folder is made (/tmp/evalkit-runs)
#   SWEEP_ARGS  more arguments for the sweep, e.g. "--part fig6a_512p" or "--set latency.min_iterations=5"
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
SMOKE=""
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE="--smoke" ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (valid: --smoke, --help)" >&2; exit 2 ;;
  esac
done
: "${OUT:?run.sh: set OUT to the folder the results go to}"
CALL_S=${CALL_S:-$([ -n "$SMOKE" ] && echo 150 || echo 540)}
TAIL_S=${TAIL_S:-25}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/evalkit-site}
PYTHON=${PYTHON:-python3}
RUNS_ROOT=${RUNS_ROOT:-/tmp/evalkit-runs}
SWEEP_ARGS=${SWEEP_ARGS:-}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"
START=$SECONDS
say() { printf '[run.sh %4ds] %s\n' "$((SECONDS - START))" "$*" | tee -a "$LOG"; }
left() { echo $((CALL_S - (SECONDS - START))); }

say "1/5 wheels: $WHEELS -> $SITE"
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "${wheels[@]}" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { say "wheel install failed"; exit 3; }
else
  say "no wheels in $WHEELS: installing nothing (mamba-ssm must already be importable for the fused SSD)"
fi
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if ! git -C "$REPO" rev-parse HEAD >/dev/null 2>&1 && [ -f "$WHEELS/SOURCE_COMMIT" ]; then
  # the copy on the GPU machine has no .git: the commit gather_wheels.sh recorded names the tree
  EVALKIT_GIT_SHA=$(cat "$WHEELS/SOURCE_COMMIT"); export EVALKIT_GIT_SHA
fi
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import torch
from evalkit.measure.common import environment, sdpa_enabled
from lingen.kernels.ops import fused_unavailable_reason
print("environment:", environment(), "| sdpa enabled:", sdpa_enabled())
print("fused SSD on cuda:", fused_unavailable_reason("cuda") or "available")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
  --format=csv 2>&1 | tee -a "$LOG"

say "2/5 gpu tests (pytest -m gpu)"
timeout 240 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests/test_kernels.py tests/test_tesa.py \
  >"$OUT/gpu-tests.txt" 2>&1
TESTS_RC=$?
tail -n 5 "$OUT/gpu-tests.txt" | tee -a "$LOG"
say "gpu tests exit status $TESTS_RC"

say "3/5 parity checks"
timeout 240 "$PYTHON" benchmarks/gpu/parity.py --out "$OUT/parity.json" 2>&1 | grep -v '^USDT' | tee -a "$LOG"
PARITY_RC=${PIPESTATUS[0]}
say "parity exit status $PARITY_RC"

BUDGET=$(( $(left) - TAIL_S ))
if [ "$BUDGET" -lt 10 ]; then
  say "4/5 sweep: only ${BUDGET}s left, not started"
  SWEEP_RC=124
  RUN_DIR=""
else
  say "4/5 sweep paper_latency $SMOKE --budget-s $BUDGET (the plan first)"
  # shellcheck disable=SC2086  # SWEEP_ARGS is a list of arguments
  "$PYTHON" -m evalkit sweep paper_latency $SMOKE $SWEEP_ARGS --budget-s "$BUDGET" --dry-run 2>&1 | grep -v '^job ' \
    >>"$LOG"
  # the budget planner ends its last point within BUDGET; timeout is the backstop for a forward far slower
  # than predicted (every record written until then is kept)
  # shellcheck disable=SC2086
  timeout $((BUDGET + TAIL_S / 2)) "$PYTHON" -m evalkit sweep paper_latency $SMOKE $SWEEP_ARGS --budget-s "$BUDGET" \
    --runs-root "$RUNS_ROOT" --new-run --no-progress --keep-going >"$OUT/sweep.txt" 2>&1
  SWEEP_RC=$?
  grep -v '^USDT' "$OUT/sweep.txt" | tail -n 40 >>"$LOG"
  # the sweep's last stdout line is its JSON summary (run_dir); after a kill, the newest run folder
  RUN_DIR=$(tail -n 1 "$OUT/sweep.txt" \
    | "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read())["run_dir"])' 2>/dev/null \
    || ls -dt "$RUNS_ROOT"/paper_latency/*/ 2>/dev/null | head -n 1)
  RUN_DIR=${RUN_DIR%/}
  say "sweep exit status $SWEEP_RC, run folder ${RUN_DIR:-none}"
fi

say "5/5 pack and table"
if [ -n "$RUN_DIR" ] && [ -d "$RUN_DIR" ]; then
  tar czf "$OUT/paper_latency-run.tar.gz" -C "$(dirname "$RUN_DIR")" "$(basename "$RUN_DIR")"
  "$PYTHON" benchmarks/gpu/table.py "$RUN_DIR" >"$OUT/table.txt" 2>&1
fi
say "done: tests $TESTS_RC, parity $PARITY_RC, sweep $SWEEP_RC; $(ls "$OUT" | wc -l) files in $OUT"
[ -f "$OUT/table.txt" ] && cat "$OUT/table.txt"
[ "$TESTS_RC" -eq 0 ] && [ "$PARITY_RC" -eq 0 ] && [ "$SWEEP_RC" -eq 0 ]
