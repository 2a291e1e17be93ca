// NVRTC compilation without a GPU: a kernel compiles to an ELF cubin, the second compile is a cache
// hit, and a compile error carries NVRTC's log. Skipped where libnvrtc is absent.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { compileSource } from '../../src/gpu/compile.ts';
import { tryNvrtc } from '../../src/gpu/ffi/nvrtc.ts';

const nv = tryNvrtc();
const skip = 'error' in nv ? `skipped: no NVRTC (${nv.error})` : false;
const SOURCE = 'extern "C" __global__ void scale(float* y, float a, int n) {\n' +
  '  int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] *= a; }\n';

test('NVRTC compiles to a cubin (ELF) for sm_90a and sm_80, then hits the on-disk cache', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-cache-'));
  const saved = process.env.INTSCALE_CACHE;
  process.env.INTSCALE_CACHE = dir;
  try {
    for (const arch of ['sm_90a', 'sm_80']) {
      const first = compileSource(SOURCE, 'scale.cu', { arch, defines: { UNUSED: 3 } });
      assert.equal(first.cached, false);
      assert.deepEqual([...first.cubin.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
      assert.ok(first.options.includes(`--gpu-architecture=${arch}`) && first.options.includes('-DUNUSED=3'));
      const second = compileSource(SOURCE, 'scale.cu', { arch, defines: { UNUSED: 3 } });
      assert.equal(second.cached, true);
      assert.ok(second.cubin.equals(first.cubin));
    }
  } finally {
    if (saved === undefined) delete process.env.INTSCALE_CACHE;
    else process.env.INTSCALE_CACHE = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a compile error names the call and carries the NVRTC log', { skip }, () => {
  assert.throws(() => compileSource('extern "C" __global__ void k() { undeclared_thing = 1; }', 'bad.cu', { noCache: true }),
    (err: unknown) => err instanceof Error && /nvrtcCompileProgram\(bad\.cu/.test(err.message) && /undeclared_thing/.test(err.message));
});
