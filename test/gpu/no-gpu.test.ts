// Without an NVIDIA driver (CI, laptops): the runtime refuses with one clear "no GPU:" line and
// `intscale doctor` prints its single no-driver line. Skipped where a GPU is present.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doctorReport } from '../../src/cli/doctor.ts';
import { IntscaleError } from '../../src/core/errors.ts';
import { tryCuda } from '../../src/gpu/ffi/cuda.ts';
import { Gpu } from '../../src/gpu/runtime.ts';

const driverPresent = 'api' in tryCuda();
const skip = driverPresent ? 'skipped: an NVIDIA driver is present (this test covers its absence)' : false;

test('Gpu.open without a driver throws IntscaleError "no GPU: ..." naming libcuda', { skip }, () => {
  assert.throws(() => Gpu.open(), (err: unknown) =>
    err instanceof IntscaleError && /^no GPU: no NVIDIA driver found \(libcuda\.so\.1\)/.test(err.message));
  assert.match(Gpu.unavailableReason() ?? '', /^no GPU: /);
});

test('intscale doctor without a driver prints exactly the one no-driver line', { skip }, () => {
  assert.deepEqual(doctorReport(),
    ['no NVIDIA driver found (libcuda.so.1): the CPU path works; GPU commands are unavailable']);
});
