#!/usr/bin/env bash
# Build and run a timing probe (tile_w/, gemv/ or attention/ probe.cu) once per compile-time variant on the GPU
# machine; prints its table for the default build ("base") and every variant.
# Usage: bash gpu-dev/experiments/probe.sh tile_w|gemv|attention ["name:-DFLAG ..." ...]
# PROBE_SRC (env): another probe source of that folder (default probe.cu, e.g. tile_w/small.cu).
# PROBE_FLAGS (env) go to every build, base included (e.g. -DW4_SELECT -DW4_SELECT_IS_G128: faster builds).
set -u
cd "$(dirname "$0")/${1:?probe folder: tile_w, gemv or attention}" || exit 1
shift
for v in "base:" "$@"; do
  name=${v%%:*}; flags=${v#*:}
  nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a ${PROBE_FLAGS:-} $flags -o "/tmp/probe_${PWD##*/}_$name" "${PROBE_SRC:-probe.cu}" 2>&1 | grep -E "error" && continue
  "/tmp/probe_${PWD##*/}_$name" "$name"
done
