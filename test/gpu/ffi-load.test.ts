// The shared-library loader behind libcuda/NVRTC/cuBLASLt: fallbacks by name, the list of paths
// tried when nothing loads, and funcAny's first-exported-symbol choice (checked on libc, present
// everywhere, so this runs without a GPU).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { funcAny, librarySearchDirs, loadLibrary } from '../../src/gpu/ffi/load.ts';

test('a missing library reports every name and existing search path it tried', () => {
  const r = loadLibrary(['libintscale-missing-1.so', 'libintscale-missing-2.so']);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.deepEqual(r.tried.slice(0, 2), ['libintscale-missing-1.so', 'libintscale-missing-2.so']);
    assert.ok(r.reason.length > 0);
  }
  assert.ok(librarySearchDirs().includes('/usr/local/cuda/targets/x86_64-linux/lib'));
});

test('the first loadable name wins; funcAny declares the first symbol the library exports', { skip: process.platform !== 'linux' ? 'skipped: needs Linux libc' : false }, () => {
  const r = loadLibrary(['libintscale-missing.so', 'libc.so.6']);
  assert.equal(r.ok, true);
  if (!r.ok) return;
  const getpid = funcAny(r.lib, ['intscale_no_such_symbol', 'getpid'], 'int', []) as () => number;
  assert.equal(getpid(), process.pid);
  assert.throws(() => funcAny(r.lib, ['intscale_no_such_symbol_a', 'intscale_no_such_symbol_b'], 'int', []));
});
