// readKernelSource (src/gpu/kernel-source.ts): quoted includes are inlined recursively with #line
// markers, cycles and missing files are one-line errors, and every shipped kernel expands to one
// self-contained text (what NVRTC compiles and the compile cache hashes). No GPU needed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { IntscaleError } from '../../src/core/errors.ts';
import { readKernelSource } from '../../src/gpu/kernel-source.ts';

function tempTree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-ks-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

test('quoted includes are inlined in place, recursively, relative to the including file, with #line markers', () => {
  const dir = tempTree({
    'k.cu': 'int a;\n#include "inc/b.cuh"\nint z;\n#include <cuda_fp16.h>\n',
    'inc/b.cuh': 'int b;\n  #  include "c.cuh"\nint b2;',
    'inc/c.cuh': 'int c;',
  });
  const text = readKernelSource(path.join(dir, 'k.cu'));
  assert.equal(text, [
    'int a;', '#line 1 "b.cuh"', 'int b;', '#line 1 "c.cuh"', 'int c;', '#line 3 "b.cuh"', 'int b2;',
    '#line 3 "k.cu"', 'int z;', '#include <cuda_fp16.h>', '',
  ].join('\n'));
});

test('a missing include or an include cycle is a one-line error naming the including file', () => {
  const dir = tempTree({ 'k.cu': '#include "nope.cuh"\n', 'x.cuh': '#include "y.cuh"\n', 'y.cuh': '#include "x.cuh"\n' });
  assert.throws(() => readKernelSource(path.join(dir, 'k.cu')), (e: unknown) =>
    e instanceof IntscaleError && /k\.cu: cannot read include "nope\.cuh": ENOENT/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => readKernelSource(path.join(dir, 'x.cuh')), /include cycle: x\.cuh -> y\.cuh -> x\.cuh/);
  assert.throws(() => readKernelSource(path.join(dir, 'missing.cu')), /missing\.cu: cannot read kernel source: ENOENT/);
});

test('every kernel in src/gpu/kernels expands to one text with the shared helpers exactly once', () => {
  const dir = new URL('../../src/gpu/kernels/', import.meta.url);
  const kernels = fs.readdirSync(dir).filter((f) => f.endsWith('.cu'));
  assert.ok(kernels.length >= 4, `found ${kernels.join(', ')}`);
  for (const k of kernels) {
    const text = readKernelSource(new URL(k, dir).pathname);
    assert.ok(!/^\s*#\s*include\s+"/m.test(text), `${k}: a quoted include survived`);
    assert.equal(text.split('DEVI void unpack_s4(').length - 1, 1, `${k}: ptx.cuh inlined once`);
    assert.equal(text.split('typedef unsigned int u32;').length - 1, 1, `${k}: u32 defined once`);
  }
});
