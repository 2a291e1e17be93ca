// The calibration flags shared by `quantize` and `compare`: --calib FILE, --calib-samples,
// --calib-len, --seed, --smooth ALPHA; parsed into CalibOptions and the SmoothQuant α.
// (--calib-device is read by calib-device.ts.)
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { CALIB_DEFAULTS, type CalibOptions } from '../quant/calib-data.ts';
import { parseIntOption } from './options.ts';

export function registerCalibOptions(cmd: Command): Command {
  return cmd
    .option('--calib <file>', 'calibration text (needed by gptq, awq and --smooth)')
    .option('--calib-samples <n>', 'calibration windows', String(CALIB_DEFAULTS.samples))
    .option('--calib-len <n>', 'positions per calibration window (BOS + text)', String(CALIB_DEFAULTS.len))
    .option('--seed <n>', 'seed of the window sampling', String(CALIB_DEFAULTS.seed))
    .option('--smooth <alpha>', 'SmoothQuant: migrate activation outliers into the weights with strength alpha (0..1)')
    .option('--calib-device <d>', "where GPTQ's calibration (layer forward, Hessian, factor, column loop) runs: cpu, cuda or auto (the GPU when usable)", 'auto');
}

/** A decimal number option. */
export function parseFloatOption(flag: string, text: string): number {
  if (!/^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(text)) fail(flag, `expected a number, got '${text}'`);
  return Number(text);
}

export function calibOptionsOf(o: Record<string, unknown>): { calib?: CalibOptions; smooth?: number } {
  const out: { calib?: CalibOptions; smooth?: number } = {};
  if (o['calib'] !== undefined) {
    out.calib = {
      file: String(o['calib']),
      samples: parseIntOption('--calib-samples', String(o['calibSamples']), 1),
      len: parseIntOption('--calib-len', String(o['calibLen']), 2),
      seed: parseIntOption('--seed', String(o['seed']), 0),
    };
  }
  if (o['smooth'] !== undefined) out.smooth = parseFloatOption('--smooth', String(o['smooth']));
  return out;
}
