// The caching allocator's size bins (pure arithmetic: runs everywhere).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CachingAllocator } from '../../src/gpu/memory.ts';

test('binSize rounds up to 512 B below 1 MiB and to 2 MiB from 1 MiB, never below the request', () => {
  assert.equal(CachingAllocator.binSize(0), 512);
  assert.equal(CachingAllocator.binSize(1), 512);
  assert.equal(CachingAllocator.binSize(512), 512);
  assert.equal(CachingAllocator.binSize(513), 1024);
  assert.equal(CachingAllocator.binSize((1 << 20) - 1), 1 << 20);
  assert.equal(CachingAllocator.binSize(1 << 20), 2 << 20);
  assert.equal(CachingAllocator.binSize((2 << 20) + 1), 4 << 20);
  for (let b = 1; b < 1e9; b = Math.ceil(b * 1.7) + 3) {
    const bin = CachingAllocator.binSize(b);
    assert.ok(bin >= b && bin - b < (b >= 1 << 20 ? 2 << 20 : 512), `bin ${bin} for ${b}`);
  }
});
