// The seam between the calibration pipeline (calibrate.ts) and a GPTQ solver on another device
// (the CUDA one: src/gpu/gptq/solver.ts). Pure types: the pipeline imports no GPU code.
// A device solver takes over GPTQ's heavy parts: the Gram matrix XᵀX of a linear group's inputs, the
// dampened, permuted Hessian's factor U (H⁻¹ = UᵀU) and the column loop with its lazy updates;
// the result is the same canonical QuantizedWeight gptq.ts returns. Optionally it runs the pipeline's
// layer forward too (layerOps), whose activations then stay on the device and feed its Gram directly.
import type { ModelConfig } from '../model/config.ts';
import type { LayerOps } from './calib-ops.ts';
import type { GptqOptions, GptqResult } from './gptq.ts';

/** Σxᵀx of one input summed on the device: rows may come in any number of add() calls (row chunks). */
export interface DeviceGram {
  readonly K: number;
  readonly rows: number;
  /** Add `rows` rows of x [rows, K] (fp32, row-major, on the host; the device's own layerOps
   *  add their activations without the host: LayerOps.accumulate). */
  add(x: Float32Array, rows: number): void;
  /** Give its device memory back (beginGroup does, once it has the factor). */
  free(): void;
}

/** The inputs of one group of linears (q/k/v, o, gate/up, down): their Gram matrix summed on the
 *  device (consumed: freed once factored), or a CPU Hessian 2·XᵀX/n. */
export type GptqGroupInput = { gram: DeviceGram } | { hessian: Float64Array };

export interface GptqGroup {
  /** GPTQ of W [N, K] (fp32, row-major) against the group's factor (gptqQuantize's options and result). */
  quantize(w: Float32Array, N: number, opts: GptqOptions): GptqResult;
}

export interface GptqDevice {
  /** e.g. "cuda (NVIDIA H200)", for notes */
  readonly label: string;
  /** A new, empty Gram accumulator for inputs of width K. */
  gram(K: number): DeviceGram;
  /** Factor one group's Hessian (prepareHessian's dead-input fix, act-order permutation and dampening).
   *  Only one group is live at a time: beginning a group gives the previous one's device memory back. */
  beginGroup(input: GptqGroupInput, K: number, opts: { percdamp?: number; actOrder?: boolean; name?: string }): GptqGroup;
  /** The calibration forward of a model of config c on the device (absent: the CPU's). */
  layerOps?(c: ModelConfig): LayerOps;
  /** Give every device resource back (the object is unusable afterwards). */
  dispose(): void;
}
