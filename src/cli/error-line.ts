// The one line the CLI prints for an error that reached the top: an IntscaleError's message, a
// file-system error as "<file>: <problem> (<CODE>)" (src/core/fs-errors.ts), or anything else as an
// internal error (never a stack trace unless INTSCALE_DEBUG=1).
import { IntscaleError } from '../core/errors.ts';
import { fsErrorMessage } from '../core/fs-errors.ts';

export function errorLine(err: unknown): string {
  if (err instanceof IntscaleError) {
    // a message carrying a tool's log (an NVRTC compile error) stays one line; INTSCALE_DEBUG=1 prints it whole
    const lines = err.message.split('\n');
    return lines.length === 1 ? err.message : `${lines[0]} (+${lines.length - 1} more lines; INTSCALE_DEBUG=1 prints them)`;
  }
  const fsLine = fsErrorMessage(err);
  if (fsLine) return fsLine;
  const first = String((err as Error | undefined)?.message ?? err).split('\n')[0];
  return `internal error: ${first} (please report it; INTSCALE_DEBUG=1 shows the stack)`;
}
