// The GPU host's entry point (scripts/gpu-run.sh): only the GPU commands — `doctor` and
// `bench gemm` — so nothing imports the plot stack (vega, resvg), which is not carried there.
// Same error handling as src/cli/main.ts.
import { Command } from 'commander';
import { IntscaleError } from '../src/core/errors.ts';
import { registerBenchGemm } from '../src/cli/bench-gemm.ts';
import { register as registerDoctor } from '../src/cli/doctor.ts';

const program = new Command('intscale').description('intscale GPU commands (device entry)');
registerDoctor(program);
registerBenchGemm(program.command('bench').description('benchmarks'));
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof IntscaleError) {
    process.stderr.write(`intscale: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
