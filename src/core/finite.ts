// Refusing non-finite numbers at the door: a NaN or ±Inf in a weight tensor is reported with the
// tensor's name and the position of the first bad value, instead of flowing silently into a model.
import { fail } from './errors.ts';

/** Index of the first NaN/±Inf in `data`, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN
  }
  return -1;
}

/** fail(name, ...) when `data` (row-major, `cols` per row) holds a NaN or ±Inf. */
export function assertFiniteTensor(name: string, data: ArrayLike<number>, cols = data.length): void {
  const i = firstNonFinite(data);
  if (i < 0) return;
  const at = cols > 0 && cols < data.length ? `row ${Math.floor(i / cols)} column ${i % cols}` : `index ${i}`;
  fail(name, `non-finite weight ${data[i]} at ${at} (a broken checkpoint: refusing to use it)`);
}
