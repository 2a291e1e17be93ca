// User-facing errors: one line naming the file (or thing) and the problem, never a stack trace.
// Anything thrown as IntscaleError is printed by the CLI as `intscale: <message>` with exit code 1.

export class IntscaleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntscaleError';
  }
}

/** Throw an IntscaleError of the form `<where>: <problem>`. */
export function fail(where: string, problem: string): never {
  throw new IntscaleError(`${where}: ${problem}`);
}
