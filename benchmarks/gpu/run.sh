#!/usr/bin/env bash
# The GPU run of every latency claim of the paper, as ONE command on a machine with a GPU and no package registry
# (a GPU machine with torch/triton preinstalled; what it lacks comes as wheels gathered beforehand by
# benchmarks/gpu/gather_wheels.sh and carried with the working tree). It installs nothing into the system: the
# wheels go into a --target folder and the project runs from this working tree via PYTHONPATH. The headline comes
# first, so a cut-off call still returns it:
#
#   1. install the wheels and check the environment: on CUDA a LinGen run without mamba-ssm's fused SSD measures
#      the reference scan, so a missing fused kernel stops here (ALLOW_REF_SSD=1 to run anyway)
#   2. the headline: python -m evalkit sweep paper_latency --part fig6a_512p (DiT-4B vs LinGen-4B, 17 s and 68 s
#      at 512p; its part is strict: every point gets the iterations it asks for first)
#   3. the gpu pytest group (fused SSD vs reference, SDPA backends, TESA split on flash) and
#      benchmarks/gpu/parity.py (the measured errors, bf16 fused-vs-reference included, and which kernels ran)
#   4. the rest of paper_latency in what is left of CALL_S (same run folder: the headline is not redone)
#   5. a short latency table printed last
# The run folder's manifest.json and results.jsonl are copied into $OUT/paper_latency-run/ every few seconds and
# at every exit, so whatever was measured comes back even when the call is killed at its time limit.
#
# Usage:  OUT=/some/dir EVALKIT_GIT_SHA=<commit> benchmarks/gpu/run.sh [--smoke]
#   --smoke     tiny models (CPU is fine): the same steps end to end, for tests/gpu/test_gpu_run.py
# Environment (defaults):
#   OUT             where the results go (required): at most 7 files (log.txt, gpu-tests.txt, parity.json,
#                   sweep.txt, table.txt, paper_latency-run/{manifest.json,results.jsonl}: the run folder for
#                   `python -m evalkit report --publish`)
#   EVALKIT_GIT_SHA the commit of this tree (required when the copy has no .git; add -dirty for local changes):
#                   the manifests record it
#   CALL_S          seconds the whole command may take (540: a 9-minute call; 150 with --smoke)
#   HEAD_S          seconds for the headline part at most (360: 3 timed forwards of each Fig. 6a point by the plan's
#                   throughput assumptions; 40 with --smoke)
#   TESTS_S         seconds kept for the gpu tests and parity after the headline (150; 40 with --smoke)
#   TAIL_S          seconds kept for the table after the last sweep (20)
#   WHEELS          folder of wheels to install (.whl: on the device machine, name it in the call's carry)
#   SITE            the --target folder (/tmp/evalkit-site)
#   PYTHON          the interpreter (python3)
#   RUNS_ROOT       where the sweep's run folder is made (/tmp/evalkit-runs)
#   SWEEP_ARGS      more arguments for the sweeps, e.g. "--set latency.min_iterations=5"
#   ALLOW_REF_SSD   1: go on on CUDA without the fused SSD (the records then say backend_ssd ref, and why)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
SMOKE=""
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE="--smoke" ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (valid: --smoke, --help)" >&2; exit 2 ;;
  esac
done
: "${OUT:?run.sh: set OUT to the folder the results go to}"
CALL_S=${CALL_S:-$([ -n "$SMOKE" ] && echo 150 || echo 540)}
HEAD_S=${HEAD_S:-$([ -n "$SMOKE" ] && echo 40 || echo 360)}
TESTS_S=${TESTS_S:-$([ -n "$SMOKE" ] && echo 40 || echo 150)}
TAIL_S=${TAIL_S:-20}
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

# the commit: git where the tree has .git, else EVALKIT_GIT_SHA as given (never a value recorded earlier)
if git -C "$REPO" rev-parse HEAD >/dev/null 2>&1; then
  unset EVALKIT_GIT_SHA
elif [ -z "${EVALKIT_GIT_SHA:-}" ]; then
  say "this copy has no .git: pass EVALKIT_GIT_SHA=\$(git rev-parse HEAD) (add -dirty for uncommitted changes)"
  exit 2
else
  export EVALKIT_GIT_SHA
fi

say "1/5 wheels: $WHEELS -> $SITE"
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "${wheels[@]}" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { say "wheel install failed"; exit 3; }
else
  say "no wheels in $WHEELS: installing nothing (name .whl in the device call's carry to bring mamba-ssm)"
fi
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# Triton compiles and autotunes mamba-ssm's kernels once per shape: keep both for the rest of the call
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/evalkit-triton} TRITON_CACHE_AUTOTUNING=1
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import os, sys
import torch
from evalkit.measure.common import environment, gpu_state, sdpa_enabled
from lingen.kernels.ops import fused_unavailable_reason
print("environment:", environment(), "| sdpa enabled:", sdpa_enabled())
if torch.cuda.is_available():
    print("gpu state:", gpu_state())
    reason = fused_unavailable_reason("cuda")
    print("fused SSD on cuda:", reason or "available")
    if reason and os.environ.get("ALLOW_REF_SSD") != "1":
        print("STOP: LinGen would be timed with the reference scan. Bring mamba-ssm (benchmarks/gpu/"
              "gather_wheels.sh here, carry .whl to the GPU machine) or set ALLOW_REF_SSD=1", file=sys.stderr)
        sys.exit(4)
EOF
ENV_RC=${PIPESTATUS[0]}
[ "$ENV_RC" -eq 0 ] || { say "environment check failed (exit $ENV_RC): nothing timed"; exit "$ENV_RC"; }

RUN_DIR="$RUNS_ROOT/paper_latency/gpu-run"
MIRROR="$OUT/paper_latency-run"
mirror() {   # the records so far into $OUT (append-only files: a copy is never worse than the last one)
  [ -f "$RUN_DIR/manifest.json" ] || return 0
  mkdir -p "$MIRROR"
  cp "$RUN_DIR/manifest.json" "$MIRROR/manifest.json" 2>/dev/null
  [ -f "$RUN_DIR/results.jsonl" ] && cp "$RUN_DIR/results.jsonl" "$MIRROR/results.jsonl.part" 2>/dev/null \
    && mv -f "$MIRROR/results.jsonl.part" "$MIRROR/results.jsonl"
  return 0
}
( while sleep 5; do mirror; done ) &
MIRROR_PID=$!
finish() {
  kill "$MIRROR_PID" 2>/dev/null
  mirror
  if [ -f "$RUN_DIR/results.jsonl" ]; then
    "$PYTHON" benchmarks/gpu/table.py "$RUN_DIR" >"$OUT/table.txt" 2>&1
  fi
}
trap finish EXIT
rm -rf "$RUN_DIR"

sweep() {   # sweep BUDGET_S [ARGS...]: one budgeted paper_latency sweep into $RUN_DIR, killed at its budget's end
  local budget=$1
  shift
  # shellcheck disable=SC2086  # SWEEP_ARGS is a list of arguments
  "$PYTHON" -m evalkit sweep paper_latency $SMOKE $SWEEP_ARGS "$@" --budget-s "$budget" --dry-run 2>&1 \
    | grep -v '^job ' >>"$LOG"
  # the budget planner ends its last point within the budget; timeout is the backstop for a forward far slower
  # than predicted (every record written until then is kept)
  # shellcheck disable=SC2086
  timeout $((budget + TAIL_S / 2)) "$PYTHON" -m evalkit sweep paper_latency $SMOKE $SWEEP_ARGS "$@" \
    --budget-s "$budget" --run-dir "$RUN_DIR" --no-progress --keep-going >>"$OUT/sweep.txt" 2>&1
  local rc=$?
  grep -v '^USDT' "$OUT/sweep.txt" | tail -n 20 >>"$LOG"
  mirror
  return $rc
}

HEAD_BUDGET=$(( HEAD_S < $(left) - TESTS_S - TAIL_S ? HEAD_S : $(left) - TESTS_S - TAIL_S ))
say "2/5 headline: sweep paper_latency --part fig6a_512p --budget-s $HEAD_BUDGET"
: >"$OUT/sweep.txt"
sweep "$HEAD_BUDGET" --part fig6a_512p
HEAD_RC=$?
say "headline sweep exit status $HEAD_RC"
[ -f "$MIRROR/results.jsonl" ] && "$PYTHON" benchmarks/gpu/table.py "$RUN_DIR" 2>&1 | tail -n 12 | tee -a "$LOG"

say "3/5 gpu tests (pytest -m gpu) and parity checks"
cap() { local s=$(( $(left) - TAIL_S )); [ "$s" -gt "$1" ] && s=$1; [ "$s" -lt 5 ] && s=5; echo "$s"; }
timeout "$(cap 120)" "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests/lingen/test_kernels.py tests/lingen/test_tesa.py \
  >"$OUT/gpu-tests.txt" 2>&1
TESTS_RC=$?
tail -n 5 "$OUT/gpu-tests.txt" | tee -a "$LOG"
timeout "$(cap 120)" "$PYTHON" benchmarks/gpu/parity.py --out "$OUT/parity.json" 2>&1 | grep -v '^USDT' \
  | tee -a "$LOG"
PARITY_RC=${PIPESTATUS[0]}
say "gpu tests exit status $TESTS_RC, parity exit status $PARITY_RC"

REST_BUDGET=$(( $(left) - TAIL_S ))
if [ "$REST_BUDGET" -lt 10 ]; then
  say "4/5 the rest: only ${REST_BUDGET}s left, not started"
  REST_RC=0
else
  say "4/5 the rest of paper_latency --budget-s $REST_BUDGET"
  sweep "$REST_BUDGET"
  REST_RC=$?
  say "sweep exit status $REST_RC"
fi

say "5/5 table"
finish
trap - EXIT
say "done: headline $HEAD_RC, tests $TESTS_RC, parity $PARITY_RC, rest $REST_RC; $(find "$OUT" -type f | wc -l) files"
[ -f "$OUT/table.txt" ] && cat "$OUT/table.txt"
[ "$HEAD_RC" -eq 0 ] && [ "$TESTS_RC" -eq 0 ] && [ "$PARITY_RC" -eq 0 ] && [ "$REST_RC" -eq 0 ]
