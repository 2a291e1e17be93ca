#!/usr/bin/env bash
# Measure this folder's patch in one device call (run from the repo root on the GPU machine, after
# scripts/gpu-prepare.sh here and with .device carried). The working tree there is a copy, so the
# patch is applied in place with patch(1); results go to $OUT.
#   bash gpu-dev/patches/measure.sh w64k   # tile w64k: exactness, the small-problem probe A/B, bench gemm M = 64-256
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
case ${1:?which patch: w64k} in
  w64k)
    # the kernel it changes, beside ptx.cuh, for the probes' A/B in the same call (the old copy has no w64k entries)
    cp src/gpu/kernels/w4_gemm_wgmma.cu src/gpu/kernels/w4_gemm_wgmma_old.cu
    patch -p1 < gpu-dev/patches/tile-w64k.patch > "$OUT/patch.txt" || { cat "$OUT/patch.txt"; exit 2; }
    TEST_TIMEOUT=240 TESTS="test/gpu/w4-gemm.test.ts test/gpu/kernel-smem.test.ts test/gpu/w4-select-defines.test.ts test/gpu/repack.test.ts" \
      BENCH=none OUT="$OUT/tests" bash scripts/gpu-run.sh 2>&1 | grep -E '^ℹ (tests|pass|fail)|not ok'
    OLD='-DW4W_PROBE_SOURCE="../../../src/gpu/kernels/w4_gemm_wgmma_old.cu"'
    # w64k against w64 / w in one binary, and the old kernel (its w / w64 rows: the non-w64k path unchanged?)
    PROBE_SRC=small.cu timeout 150 bash gpu-dev/experiments/probe.sh tile_w "old:-DPROBE_NO_W64K $OLD" > "$OUT/small.txt" 2>&1
    cat "$OUT/small.txt"
    timeout 120 bash gpu-dev/experiments/probe.sh tile_w "old:$OLD" > "$OUT/large.txt" 2>&1
    rm -f src/gpu/kernels/w4_gemm_wgmma_old.cu
    # the planner's tiles, then w64k forced on every W4 kind and shape
    for t in planner w64k; do
      args="--m 64,128,256 --impl fp16,w4a8-is,w4a8-fs,w4a8-pc,w4a16"
      [[ $t == w64k ]] && args="$args --w4-tile w64k"
      SKIP_TESTS=1 BENCH=gemm BENCH_TIMEOUT=150 BENCH_ARGS="$args" OUT="$OUT/gemm-$t" bash scripts/gpu-run.sh 2>&1 | grep -A5 '^summary'
    done ;;
  *) echo "measure.sh: unknown patch '$1' (w64k)"; exit 2 ;;
esac
