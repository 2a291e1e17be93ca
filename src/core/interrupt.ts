// Interruption with nothing left behind: while a command has temporary outputs on disk it registers
// them here; SIGINT, SIGTERM or SIGHUP then remove them and end the process with 128 + the signal
// number (130, 143, 129). The handlers are installed only while something is registered, so work
// with nothing to clean up keeps the default, immediate reaction to a signal. JavaScript handlers
// run between synchronous steps: long work must `await yieldForSignals()` now and then.
import * as fs from 'node:fs';

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
type HandledSignal = keyof typeof SIGNAL_NUMBERS;

const registered = new Set<string>();
let installed = false;

function onSignal(signal: HandledSignal): void {
  const removed: string[] = [];
  for (const p of registered) {
    try {
      fs.rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch {
      process.stderr.write(`intscale: could not remove ${p}\n`);
    }
  }
  registered.clear();
  process.stderr.write(`intscale: interrupted by ${signal}${removed.length ? `; removed ${removed.join(', ')}` : ''}\n`);
  process.exit(128 + SIGNAL_NUMBERS[signal]);
}

const listeners = Object.fromEntries(
  (Object.keys(SIGNAL_NUMBERS) as HandledSignal[]).map((s) => [s, () => onSignal(s)]),
) as Record<HandledSignal, () => void>;

function install(): void {
  if (installed) return;
  installed = true;
  for (const s of Object.keys(listeners) as HandledSignal[]) process.on(s, listeners[s]);
}

function uninstall(): void {
  if (!installed || registered.size > 0) return;
  installed = false;
  for (const s of Object.keys(listeners) as HandledSignal[]) process.off(s, listeners[s]);
}

/** Let pending signal handlers run (between layers of long synchronous work). */
export function yieldForSignals(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A temporary path removed on interruption until released. */
export interface TemporaryPath {
  readonly path: string;
  /** The path is no longer temporary (renamed into place or removed): stop watching it. A signal
   *  that arrived meanwhile is handled first (so it is not lost when the handlers go). */
  release(): Promise<void>;
}

/** Remove `p` (file or directory tree) if the process is interrupted before `release()`. */
export function removeOnInterrupt(p: string): TemporaryPath {
  registered.add(p);
  install();
  return {
    path: p,
    async release() {
      registered.delete(p);
      await yieldForSignals();
      uninstall();
    },
  };
}

/** The paths registered now (for tests). */
export function registeredTemporaries(): string[] {
  return [...registered];
}
