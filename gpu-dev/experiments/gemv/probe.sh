#!/usr/bin/env bash
# Build and run probe.cu (small-M tiles) once per variant on the GPU machine; prints the table.
# Usage: bash gpu-dev/experiments/gemv/probe.sh "name:-DFLAG ..." ...
cd "$(dirname "$0")"
for v in "base:" "$@"; do
  name=${v%%:*}; flags=${v#*:}
  nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a $flags -o /tmp/gvprobe_$name probe.cu 2>&1 | grep -E "error" && continue
  /tmp/gvprobe_$name "$name"
done
