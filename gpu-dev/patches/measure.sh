#!/usr/bin/env bash
# Measure one of this folder's patches in a device call (run from the repo root on the GPU machine,
# after scripts/gpu-prepare.sh here and with .device carried). The working tree there is a copy, so
# the patch is applied with patch(1) in place; results go to $OUT.
#   bash gpu-dev/patches/measure.sh tma-store     # tile w's TMA-store epilogue: probe A/B, exactness, bench gemm
#   bash gpu-dev/patches/measure.sh serve-graphs  # decode-graph serving steps: GPU tests, bench serve
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
case ${1:?which patch: tma-store or serve-graphs} in
  tma-store)
    # the kernel it replaces, beside ptx.cuh, for the probe's A/B in the same call
    cp src/gpu/kernels/w4_gemm_wgmma.cu src/gpu/kernels/w4_gemm_wgmma_old.cu
    patch -p1 < gpu-dev/patches/tile-w-tma-store-epilogue.patch > "$OUT/patch.txt" || { cat "$OUT/patch.txt"; exit 2; }
    bash gpu-dev/experiments/probe.sh tile_w 'old:-DW4W_PROBE_SOURCE="../../../src/gpu/kernels/w4_gemm_wgmma_old.cu"' 2>&1 | tee "$OUT/probe.txt"
    rm -f src/gpu/kernels/w4_gemm_wgmma_old.cu
    TEST_TIMEOUT=200 TESTS="test/gpu/w4-gemm.test.ts" BENCH=gemm BENCH_TIMEOUT=200 \
      BENCH_ARGS="--impl fp16,int8,w4a8-is,w4a8-fs,w4a8-pc,w4a16 --m 64,128,256,1024,4096" OUT="$OUT/run" bash scripts/gpu-run.sh 2>&1 | tail -30 ;;
  serve-graphs)
    patch -p1 < gpu-dev/patches/serve-decode-graphs.patch > "$OUT/patch.txt" || { cat "$OUT/patch.txt"; exit 2; }
    TEST_TIMEOUT=300 TESTS="test/gpu/engine-step-graph.test.ts test/gpu/continuous-gpu.test.ts" BENCH=none OUT="$OUT/run" bash scripts/gpu-run.sh 2>&1 | tail -20
    source .device/unpack-node.sh >/dev/null
    export LD_LIBRARY_PATH=/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-} INTSCALE_CACHE=/tmp/intscale-cache INTSCALE_COMMIT=$(cat .device/commit 2>/dev/null || echo unknown)
    INTSCALE_QUIET=1 timeout 200 node bin/intscale.js bench serve --arch llama2-7b --mode w4a8-is --max-batch 16 --requests 48 \
      --json "$OUT/serve.json" 2>&1 | tee "$OUT/serve.txt" ;;
  *) echo "measure.sh: unknown patch '$1' (tma-store or serve-graphs)"; exit 2 ;;
esac
