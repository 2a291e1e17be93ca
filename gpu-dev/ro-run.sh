#!/usr/bin/env bash
# gpu-dev/ro-run.sh — one device run for the reordered g128 IS/FS tiles (r/q/t, w4_gemm.cu RO path):
# SASS key ops of the new vs old kernels, correctness sweep (rocheck), torch peers and the timing
# table (rotime). Prebuild here and carry gpu-dev/build (bench + w4.cubin): see gpu-dev/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/intscale-gpu-dev}; mkdir -p "$OUT"; export OUT
B=gpu-dev/build/bench
stamp=$(cat src/gpu/kernels/*.cu src/gpu/kernels/*.cuh gpu-dev/bench.cu | sha256sum | cut -c1-16)
if [ ! -x $B ] || [ "$(cat $B.stamp 2>/dev/null)" != "$stamp" ]; then
  echo "building bench on the device"; mkdir -p gpu-dev/build
  nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -fopenmp -o $B gpu-dev/bench.cu -ldl || exit 1
  echo "$stamp" > $B.stamp
fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
if command -v cuobjdump >/dev/null && [ -f gpu-dev/build/w4.cubin ]; then
  cuobjdump --dump-sass gpu-dev/build/w4.cubin > "$OUT/w4_gemm.sass"
  for f in w4a8_gemm_is_g128_l w4a8_gemm_is_g128_r w4a8_gemm_fs_g128_r w4a8_gemm_pc_l; do
    ops=$(awk -v f="$f" '/Function : /{p=($3==f)} p' "$OUT/w4_gemm.sass" | grep -oE '^ +/\*[0-9a-f]{4}\*/ +[A-Z0-9]+(\.[A-Z0-9.]+)?' | awk '{print $2}')
    echo "SASS $f: $(echo "$ops" | sed 's/\..*//' | sort | uniq -c | sort -rn | head -14 | tr '\n' ' ')"
    echo "SASS $f key ops: $(echo "$ops" | grep -E '^(IMMA|LDSM|LDS|IMAD|I2F|FFMA|LDL|STL)' | sort | uniq -c | tr '\n' ' ')"
  done
fi
export OMP_NUM_THREADS=16
timeout 150 $B rocheck 2>&1 | tee "$OUT/rocheck.log"; rc=${PIPESTATUS[0]}
timeout 60 python3 gpu-dev/peers.py 256,512,1024,2048,4096 4096x22016,4096x4096,11008x4096 > "$OUT/peers_ro.csv" 2> "$OUT/peers_ro.err"
timeout 90 $B rotime 2>&1 | tee "$OUT/rotime.log"
grep -v '^#' "$OUT/peers_ro.csv"
exit $rc
