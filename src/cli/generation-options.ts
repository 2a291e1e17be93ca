// The options `generate` and `batch` share: sampling (--max-new, --temperature, --top-p, --seed,
// --stop-at-eos) and where the model runs (--device, and for the GPU --mode and --group), with the
// checks of their values (one-line errors naming the option).
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { parseIntOption, parseNumberOption } from './options.ts';

export interface SamplingCliOptions {
  maxNew: string; temperature: string; topP: string; seed: string; stopAtEos?: boolean;
}
export interface DeviceCliOptions {
  device?: string; mode?: string; group: string;
}

/** Add the sampling options; `seedHelp` says how the seed is used. */
export function addSamplingOptions(cmd: Command, seedHelp: string): Command {
  return cmd
    .option('--max-new <n>', 'new tokens per prompt', '128')
    .option('--temperature <t>', '0 = greedy', '0')
    .option('--top-p <p>', 'nucleus sampling mass', '0.9')
    .option('--seed <s>', seedHelp, '0')
    .option('--stop-at-eos', 'stop at the end-of-sequence token');
}

export function addDeviceOptions(cmd: Command): Command {
  return cmd
    .option('--device <d>', 'cpu or cuda (default: cuda when a GPU can run the model)')
    .option('--mode <m>', 'GPU: fp16, w4a16, w4a8-fs, w4a8-is or w4a8-pc (default: the checkpoint\'s)')
    .option('--group <n>', 'GPU: group size when quantizing an fp16 model for --mode', '128');
}

export function parseSampling(opts: SamplingCliOptions): { maxNew: number; temperature: number; topP: number; seed: number } {
  const maxNew = parseIntOption('--max-new', opts.maxNew, 1), seed = parseIntOption('--seed', opts.seed);
  const temperature = parseNumberOption('--temperature', opts.temperature), topP = parseNumberOption('--top-p', opts.topP);
  if (!(temperature >= 0)) fail('--temperature', `must be a number ≥ 0 (got ${opts.temperature})`);
  if (!(topP > 0 && topP <= 1)) fail('--top-p', `must be in (0, 1] (got ${opts.topP})`);
  return { maxNew, temperature, topP, seed };
}
