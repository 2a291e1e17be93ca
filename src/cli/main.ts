// The `intscale` command line: builds the commander program from one file per command and turns
// IntscaleError (bad input) into a single `intscale: ...` line with exit code 1.
import { Command } from 'commander';
import { IntscaleError } from '../core/errors.ts';
import { commands } from './commands.ts';

const program = new Command('intscale')
  .description('Integer Scale W4A8 quantization of LLMs: quantize, evaluate, run on NVIDIA GPUs')
  .version('0.1.0');
for (const register of commands) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof IntscaleError) {
    process.stderr.write(`intscale: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
