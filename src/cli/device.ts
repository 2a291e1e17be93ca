// `--device cpu|cuda` for the commands that run a model: explicit choices are checked (cuda needs
// a usable GPU and a model the GPU engine supports); without the option, cuda when both hold,
// else the CPU engine with a one-line `note:` on stderr saying why (silent with INTSCALE_QUIET=1).
import { fail, IntscaleError } from '../core/errors.ts';
import { Gpu } from '../gpu/runtime.ts';
import { readModelConfig } from '../io/validate-model.ts';
import { detectModel } from '../io/model-dir.ts';
import { checkGpuConfig } from '../backends/cuda/load-device.ts';

export type Device = 'cpu' | 'cuda';

/** Why the GPU engine cannot run `modelPath` here, or undefined. */
function gpuUnfit(modelPath: string): string | undefined {
  const kind = detectModel(modelPath);  // a missing or unknown model fails here, before any notice
  const gpu = Gpu.unavailableReason();
  if (gpu) return gpu;
  if (kind.format !== 'hf') return 'the GPU engine loads Hugging Face directories only (this is a llama2.c checkpoint)';
  try {
    checkGpuConfig(readModelConfig(kind.dir).config, modelPath);
    return undefined;
  } catch (e) {
    if (e instanceof IntscaleError) return e.message;
    throw e;
  }
}

export function chooseDevice(option: string | undefined, modelPath: string): Device {
  if (option !== undefined && option !== 'cpu' && option !== 'cuda') fail('--device', `expected cpu or cuda, got '${option}'`);
  if (option === 'cpu') return 'cpu';
  const why = gpuUnfit(modelPath);
  if (option === 'cuda') {
    if (why) fail('--device cuda', why);
    return 'cuda';
  }
  if (why) {
    // a note, not an error: silent with INTSCALE_QUIET=1, and never the `intscale:` prefix of errors
    if (process.env['INTSCALE_QUIET'] !== '1') process.stderr.write(`note: running on the CPU (${why})\n`);
    return 'cpu';
  }
  return 'cuda';
}
