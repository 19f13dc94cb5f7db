#!/usr/bin/env bash
# The prepared GPU check (issue #26: "when a session has a CUDA device, run the speed suite
# there and record it next to CPU"). For a session that is lent a CUDA machine:
#   1. here:            bash scripts/device_wheels.sh
#   2. the device tool:  run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=540)
#   3. here:            the files come back under the reply's files_at: results.tar.gz holds the
#                       harness records (benchmarks/results layout: <machine_id>/parts/...);
#                       unpack it over benchmarks/results and run `python -m benchmarks table`.
# Each step has its own time limit so that the whole run ends inside ~8 minutes and leaves the
# session's device time for one rerun; summary.txt says which steps ran and their exit codes.
# DEVICE=cpu runs the same steps on the CPU (to check the script itself on a machine without GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/device_check_out}
device=${DEVICE:-cuda}
mkdir -p "$out"
work=$(mktemp -d)
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$work/site" .whl/*.whl || { echo "wheel install failed" | tee "$out/summary.txt"; exit 3; }
  export PYTHONPATH="$work/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi 2>&1 | head -20
  python3 -c "import sys, torch, faiss, ballistics; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print('faiss', faiss.__version__, 'ballistics', ballistics.__version__, ballistics.__file__)"
} > "$out/env.txt" 2>&1
: > "$out/summary.txt"
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0)) s" >> "$out/summary.txt"
}
# 1. every CUDA test case (the device fixture's cuda parameter): ~18 tests
step pytest_cuda 150 python3 -m pytest -q -p no:cacheprovider -m cuda tests
# 2. the speed parts that have a GPU path, quick sizes, recorded with the machine stamp; one
#    harness run per part, so that a slow part cannot starve the next
speed() {  # speed PART SECONDS
  step "speed_$1" "$2" python3 -m benchmarks speed --quick --device "$device" --no-table \
    --results "$work/results" --timeout "$(( $2 - 10 ))" --only "$1"
}
speed compare_speed 120
speed embed_bench 90
speed search_bench 120
tar czf "$out/results.tar.gz" -C "$work" results 2>> "$out/summary.txt"
cat "$out/summary.txt"
