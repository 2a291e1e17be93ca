#!/usr/bin/env bash
# Run ON THE GPU MACHINE from the repo root (device tool, carry [".device"], after
# scripts/gpu-prepare.sh here): intscale doctor, the GPU test suite, then a benchmark.
# Results land in $OUT: doctor.txt, tests.txt, bench.txt, gemm.json / e2e.json.
# Env: BENCH = gemm (default) | e2e | none; BENCH_ARGS (extra args of `bench gemm` / `bench e2e`),
#      SKIP_TESTS=1, TESTS (default: test/gpu/*.test.ts), TEST_TIMEOUT / BENCH_TIMEOUT seconds
#      (default 300 each, so a hung kernel cannot eat the whole call).
#      The shared test model and texts: when .devshared/ (git-ignored, carried) holds
#      docs-llama-30m/ and *.txt, they are linked to ../shared/ as the tests expect.
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
if [[ ! -f .device/node.xz ]]; then echo "gpu-run: .device/ is missing (run scripts/gpu-prepare.sh and carry .device)"; exit 2; fi
source .device/unpack-node.sh >/dev/null
ln -sfn .device/nm/node_modules node_modules
if [[ -d .devshared/docs-llama-30m ]]; then
  mkdir -p ../shared/models ../shared/data/eval
  ln -sfn "$PWD/.devshared/docs-llama-30m" ../shared/models/docs-llama-30m
  for t in .devshared/*.txt; do ln -sfn "$PWD/$t" "../shared/data/eval/$(basename "$t")"; done
fi
export INTSCALE_CACHE=/tmp/intscale-cache INTSCALE_COMMIT=$(cat .device/commit 2>/dev/null || echo unknown)
export LD_LIBRARY_PATH=/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}
intscale() { node bin/intscale.js "$@"; }  # the plot stack (vega, resvg) is not carried here: plots load lazily
status=0
echo "== doctor"; intscale doctor 2>&1 | tee "$OUT/doctor.txt" || status=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv >> "$OUT/doctor.txt" 2>&1
if [[ ${SKIP_TESTS:-0} != 1 ]]; then
  echo "== tests"
  # shellcheck disable=SC2086
  timeout "${TEST_TIMEOUT:-300}" node --import tsx --test --test-concurrency=1 --test-reporter=spec ${TESTS:-test/gpu/*.test.ts} > "$OUT/tests.txt" 2>&1 || status=1
  # a timed-out runner can leave its per-file test processes running on the GPU: stop them before
  # anything is timed (no other node process runs at this point; -x: the process name, not the command line)
  pkill -x node 2>/dev/null && echo "(killed leftover test processes after a timeout)"
  grep -E '^(ℹ|✖)|not ok|# (pass|fail|skip)|^# ' "$OUT/tests.txt" | head -60
fi
case ${BENCH:-gemm} in
  gemm)
    echo "== bench gemm"
    # shellcheck disable=SC2086
    INTSCALE_QUIET=1 timeout "${BENCH_TIMEOUT:-300}" node bin/intscale.js bench gemm ${BENCH_ARGS:-} \
      --json "$OUT/gemm.json" 2>&1 | tee "$OUT/bench.txt" || status=1 ;;
  e2e)
    echo "== bench e2e"
    # shellcheck disable=SC2086
    INTSCALE_QUIET=1 timeout "${BENCH_TIMEOUT:-300}" node bin/intscale.js bench e2e ${BENCH_ARGS:-} \
      --json "$OUT/e2e.json" 2>&1 | tee "$OUT/bench.txt" || status=1 ;;
  none) ;;
esac
exit $status
