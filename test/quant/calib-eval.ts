// What the calibration tests share to judge a method: seeded windows, the CPU engine's logits over
// them, and the held-out logit error of a calibrated model (its weights installed as W4A16).
import assert from 'node:assert/strict';
import type { Rng } from '../../src/core/rng.ts';
import { Session, type Model } from '../../src/model/llama.ts';
import { calibrateModel, type CalibrationResult, type MethodOptions } from '../../src/quant/calibrate.ts';
import type { QuantMode } from '../../src/core/modes.ts';
import { installQuantized, withIntegerScales } from '../../src/quant/install-quantized.ts';

/** n windows of T ids, BOS (1) first. */
export function randomWindows(rng: Rng, n: number, T: number, vocab: number): number[][] {
  return Array.from({ length: n }, () => [1, ...Array.from({ length: T - 1 }, () => rng.int(0, vocab - 1))]);
}

/** The CPU engine's logits of every position of every window: [S·T, vocab]. */
export function engineLogits(model: Model, windows: number[][]): Float32Array {
  const V = model.config.vocabSize, T = windows[0]!.length;
  const out = new Float32Array(windows.length * T * V);
  windows.forEach((ids, s) => {
    const session = new Session(model, { maxSeq: T });
    out.set(session.forward(ids, { allLogits: true }), s * T * V);
    session.dispose();
  });
  return out;
}

/** Mean squared logit error on `heldOut` of the model calibrated with `o` on `calib` (`linears`
 *  quantized, every value in the int4 range), against the dense model's logits `ref`; the dense
 *  linears are restored afterwards. `inspect` sees the calibration result first; `mode`: how the
 *  quantized linears run (W4A16 by default). */
export function logitError(model: Model, o: MethodOptions, calib: number[][], heldOut: number[][], ref: Float32Array,
                           linears: number, inspect?: (r: CalibrationResult) => void, mode: QuantMode = 'w4a16'): number {
  const r = calibrateModel(model, calib, o);
  for (const qw of r.weights.values()) for (const v of qw.q) assert.ok(v >= -7 && v <= 7);
  assert.equal(r.weights.size, linears);
  inspect?.(r);
  const restore = installQuantized(model, withIntegerScales(r.weights, 'auto'), r.norms, mode);
  try {
    const got = engineLogits(model, heldOut);
    let e = 0;
    for (let i = 0; i < got.length; i++) e += (got[i]! - ref[i]!) ** 2;
    return e / got.length;
  } finally {
    restore();
  }
}
