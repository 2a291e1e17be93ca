// The one line the CLI prints for an error that reached the top: an IntscaleError's message, a
// file-system error as "<file>: <problem> (<CODE>)" (src/core/fs-errors.ts), or anything else as an
// internal error (never a stack trace unless INTSCALE_DEBUG=1).
import { IntscaleError } from '../core/errors.ts';
import { fsErrorMessage } from '../core/fs-errors.ts';

export function errorLine(err: unknown): string {
  if (err instanceof IntscaleError) return err.message;
  const fsLine = fsErrorMessage(err);
  if (fsLine) return fsLine;
  const first = String((err as Error | undefined)?.message ?? err).split('\n')[0];
  return `internal error: ${first} (please report it; INTSCALE_DEBUG=1 shows the stack)`;
}
