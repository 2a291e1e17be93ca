// The `intscale` command line: builds the commander program from one file per command and turns
// every failure into a single `intscale: ...` line with exit code 1: IntscaleError (bad input), a
// file-system error that escaped its call site, or anything else (src/cli/error-line.ts). A closed
// stdout (EPIPE, as in `intscale inspect DIR | head`) ends the process quietly with exit code 0.
import { Command } from 'commander';
import { IntscaleError } from '../core/errors.ts';
import { fsErrorMessage } from '../core/fs-errors.ts';
import { commands } from './commands.ts';
import { errorLine } from './error-line.ts';

function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    process.stderr.write(`intscale: ${fsErrorMessage(e, stream === process.stdout ? 'stdout' : 'stderr') ?? e.message}\n`);
    process.exit(1);
  });
}
quietOnClosedPipe(process.stdout);
quietOnClosedPipe(process.stderr);

const program = new Command('intscale')
  .description('Integer Scale W4A8 quantization of LLMs: quantize, evaluate, run on NVIDIA GPUs')
  .version('0.1.0');
for (const register of commands) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (process.env['INTSCALE_DEBUG'] === '1') process.stderr.write(`${err instanceof IntscaleError ? err.message : (err as Error)?.stack ?? String(err)}\n`);
  process.stderr.write(`intscale: ${errorLine(err)}\n`);
  process.exit(1);
}
