// The GPU paths' bad outcomes are one IntscaleError line naming what was asked for: a KV cache too
// large for the device (--max-batch / --max-seq), a launch the device refuses, and a kernel that
// does not compile for the architecture asked for (NVRTC's log stays out of the CLI's one line).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IntscaleError } from '../../src/core/errors.ts';
import { Gpu } from '../../src/gpu/runtime.ts';
import { compileSource } from '../../src/gpu/compile.ts';
import { archPreset } from '../../src/model/arch-presets.ts';
import { KvCache } from '../../src/backends/cuda/kv-cache.ts';
import { errorLine } from '../../src/cli/error-line.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

const oneLine = (f: () => unknown, pattern: RegExp) => {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof IntscaleError, String(e));
    const line = errorLine(e);
    assert.ok(!line.includes('\n'), line);
    assert.match(line, pattern);
    return true;
  });
};

test('GPU failures are one line: an oversized KV cache, a refused launch, a kernel that does not compile for the arch', { skip }, () => {
  const gpu = Gpu.open();
  const before = gpu.memInfo().liveBytes;
  oneLine(() => new KvCache(gpu, archPreset('llama2-7b'), 100_000, 4096),
    /^kv cache: cannot allocate \d+\.\d+ GiB for 100000 sequences of 4096 positions .*CUDA_ERROR_OUT_OF_MEMORY.*lower --max-batch or --max-seq$/);
  assert.equal(gpu.memInfo().liveBytes, before, 'nothing of the failed cache stays allocated');
  const k = gpu.compileSource('extern "C" __global__ void noop(int* p) { if (p) *p = 1; }', 'noop.cu', { noCache: true }).fn('noop');
  oneLine(() => k.launch({ grid: 1, block: 4096 }, [{ ptr: 0n }]), /^cuLaunchKernel\(noop, grid 1x1x1, block 4096x1x1, smem 0\) failed: CUDA_ERROR_INVALID_VALUE/);
  // wgmma does not exist before sm_90a: NVRTC's error log is folded into the one line
  oneLine(() => compileSource('extern "C" __global__ void w() { asm volatile("wgmma.fence.sync.aligned;"); }', 'w.cu', { arch: 'sm_80', noCache: true }),
    /^nvrtcCompileProgram\(w\.cu, [^)]*\) failed: NVRTC_ERROR_\w+/);
});
