// Progress reporting for long work: a cli-progress bar on a TTY stderr, otherwise at most ~11
// plain lines on stderr (every 10% and at the end); silent when INTSCALE_QUIET=1.
import cliProgress from 'cli-progress';

export interface Progress {
  /** Advance by n units (default 1). */
  tick(n?: number): void;
  /** Finish the bar (idempotent). */
  done(): void;
}

export function progress(label: string, total: number): Progress {
  if (process.env['INTSCALE_QUIET'] === '1') return { tick() {}, done() {} };
  const started = Date.now();
  let count = 0, finished = false;

  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {value}/{total} eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return {
      tick(n = 1) { if (!finished) bar.increment(n); },
      done() { if (!finished) { finished = true; bar.stop(); } },
    };
  }

  let nextPercent = 10;
  return {
    tick(n = 1) {
      if (finished) return;
      count += n;
      const percent = total > 0 ? Math.floor((count * 100) / total) : 100;
      if (percent >= nextPercent && percent < 100) {
        process.stderr.write(`${label}: ${percent}% (${count}/${total})\n`);
        nextPercent = (Math.floor(percent / 10) + 1) * 10;
      }
    },
    done() {
      if (finished) return;
      finished = true;
      process.stderr.write(`${label}: done (${count}/${total}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    },
  };
}
