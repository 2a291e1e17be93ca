#!/usr/bin/env bash
# gpu-dev/run.sh — the kernels' device run: build the bench (unless a prebuilt gpu-dev/build/bench
# newer than the sources was carried), NVRTC compile check, correctness sweep, SASS summary, timings
# vs torch peers, short ratio table last. Usage: bash gpu-dev/run.sh [all|check|time] [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/intscale-gpu-dev}; mkdir -p "$OUT"; export OUT
what=${1:-all}; quick=${2:-}
B=gpu-dev/build/bench
stamp=$(cat src/gpu/kernels/*.cu src/gpu/kernels/*.cuh gpu-dev/bench.cu | sha256sum | cut -c1-16)
if [ ! -x $B ] || [ "$(cat $B.stamp 2>/dev/null)" != "$stamp" ]; then
  echo "building bench on the device"; mkdir -p gpu-dev/build
  nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -fopenmp -o $B gpu-dev/bench.cu -ldl || exit 1
  echo "$stamp" > $B.stamp
fi
export NVRTC_LIB=${NVRTC_LIB:-$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)}
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
if command -v cuobjdump >/dev/null; then
  nvcc -cubin -gencode=arch=compute_90a,code=sm_90a -o /tmp/w4.cubin src/gpu/kernels/w4_gemm.cu
  cuobjdump --dump-sass /tmp/w4.cubin > "$OUT/w4_gemm.sass"
  for f in w4a8_gemm_is_g128_s w4a8_gemm_is_g128_l w4a8_gemm_pc_l w4a16_gemm_g128_s; do
    ops=$(awk -v f="$f" '/Function : /{p=($3==f)} p' "$OUT/w4_gemm.sass" | grep -oE '^ +/\*[0-9a-f]{4}\*/ +[A-Z0-9]+(\.[A-Z0-9.]+)?' | awk '{print $2}')
    echo "SASS $f: $(echo "$ops" | sed 's/\..*//' | sort | uniq -c | sort -rn | head -10 | tr '\n' ' ')"
    echo "SASS $f key ops: $(echo "$ops" | grep -E '^(IMMA|HMMA|LDSM|UBLKCP|LDGSTS|LDL|STL|SYNCS)' | sort | uniq -c | tr '\n' ' ')"
  done
fi
mode=$what; [ "$what" = all ] && mode=all
if [ "$what" = time ] || [ "$what" = all ]; then
  (python3 gpu-dev/peers.py $([ "$quick" = --quick ] && echo 1,128) > "$OUT/peers.csv" 2> "$OUT/peers.err") &
  peers=$!
  # peers and our timings must not overlap: wait for the peers first
  wait $peers
fi
OMP_NUM_THREADS=16 $B $mode $quick 2>&1 | tee "$OUT/bench.log"
rc=${PIPESTATUS[0]}
if [ -f "$OUT/kernels.csv" ] && [ -f "$OUT/peers.csv" ]; then python3 gpu-dev/table.py "$OUT/kernels.csv" "$OUT/peers.csv" | tee "$OUT/table.txt"; fi
exit $rc
