// Memory trace for long calibration runs: with INTSCALE_MEMTRACE=1, memTrace(label) writes one line
// to stderr: the process RSS now, the peak RSS since the previous trace point (Linux: VmHWM from
// /proc/self/status, reset after each line through /proc/self/clear_refs), V8's JS heap, the
// ArrayBuffers outside it, and the WebAssembly heap (its size, which never shrinks, and the bytes
// allocated in it). Off by default: one environment check per call. Resetting the high-water mark
// also resets what getrusage (and so /usr/bin/time -v) reports as the maximum RSS: in a traced run the
// true peak is the largest `peak` printed.
import * as fs from 'node:fs';
import { heapLiveBytes, memory } from './wasm-heap.ts';

const enabled = () => process.env['INTSCALE_MEMTRACE'] === '1';
const GIB = 2 ** 30;
const gib = (b: number) => (b / GIB).toFixed(2);

/** RSS and its high-water mark in bytes (Linux /proc; elsewhere both are process.memoryUsage().rss). */
export function rssNow(): { rss: number; hwm: number } {
  try {
    const s = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    const rss = kb('VmRSS'), hwm = kb('VmHWM');
    if (Number.isFinite(rss) && Number.isFinite(hwm)) return { rss, hwm };
  } catch { /* not Linux */ }
  const rss = process.memoryUsage().rss;
  return { rss, hwm: rss };
}

/** Reset the RSS high-water mark (Linux; a no-op elsewhere). */
function resetPeak(): void {
  try { fs.writeFileSync('/proc/self/clear_refs', '5'); } catch { /* not permitted or not Linux */ }
}

let start = 0;
/** One trace line (INTSCALE_MEMTRACE=1), naming the point reached. */
export function memTrace(label: string): void {
  if (!enabled()) return;
  start ||= performance.now();
  const { rss, hwm } = rssNow(), m = process.memoryUsage();
  process.stderr.write(`memtrace ${((performance.now() - start) / 1000).toFixed(1).padStart(7)} s ${label.padEnd(28)} rss ${gib(rss)} peak ${gib(hwm)} js ${gib(m.heapUsed)} ab ${gib(m.arrayBuffers)} wasm ${gib(memory.buffer.byteLength)} live ${gib(heapLiveBytes())} GiB\n`);
  resetPeak();
}
