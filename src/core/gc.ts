// Frees dropped large arrays now: V8 collects an ArrayBuffer's memory only at a garbage collection,
// and with a small JavaScript heap those come late, so a pipeline that drops a K×K float64 array
// (970 MB at K = 11008) and allocates the next would hold both. The collector is exposed once
// (--expose-gc set at run time, the function taken from a fresh context); where that is not
// possible this is a no-op and memory is returned at V8's own pace. Callers note what they drop
// (dropped) and collect when it is worth a collection (collectDropped: 256 MiB or more).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

/** A full garbage collection (a few ms with the pipeline's small JS heap). */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const f: unknown = runInNewContext('gc');
      gc = typeof f === 'function' ? (f as () => void) : null;
    } catch {
      gc = null;
    }
  }
  gc?.();
}

/** Bytes dropped (no longer referenced) since the last collection. */
let pending = 0;
const WORTH = 256 * 2 ** 20;

/** Note `bytes` of arrays just dropped. */
export function dropped(bytes: number): void {
  pending += bytes;
}

/** Collects when at least 256 MiB were dropped since the last collection (small models never pay). */
export function collectDropped(): void {
  if (pending < WORTH) return;
  pending = 0;
  collectGarbage();
}
