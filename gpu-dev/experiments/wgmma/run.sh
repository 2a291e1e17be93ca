#!/usr/bin/env bash
# Build the wgmma W4A8-IS prototype on the GPU machine (sm_90a), dump the SASS op histogram, then
# check (bit-exact vs naive GPU reference) and time it. Logs go to ${OUT:-results}/.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-results}; mkdir -p "$out"
nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o /tmp/wgmma_harness harness.cu \
  2>&1 | tee "$out/build.log" | grep -E "error|C75|spill|Used|entry"
[ -x /tmp/wgmma_harness ] || { echo "build failed"; exit 1; }
if command -v cuobjdump >/dev/null; then
  cuobjdump --dump-sass /tmp/wgmma_harness > "$out/sass.txt"
  awk '/Function :/ {f=$3} {for(i=1;i<=NF;i++) if ($i ~ /^(IGMMA|WARPGROUP|LDGSTS|LDL|STL|BAR|LDG)/) {split($i,p,"."); c[f" "p[1]]++; break}} END {for (k in c) print k, c[k]}' \
    "$out/sass.txt" | sort | tee "$out/sass_hist.txt"
fi
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for shape in "1024 1024 1024" "256 22016 4096" "4096 4096 4096" "4096 22016 4096"; do
  /tmp/wgmma_harness $shape 20 2>&1 | tee -a "$out/run.log"
done
