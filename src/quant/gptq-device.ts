// The seam between the calibration pipeline (calibrate.ts) and a GPTQ solver on another device
// (the CUDA one: src/gpu/gptq/solver.ts). Pure types: the pipeline imports no GPU code.
// A device solver takes over GPTQ's heavy parts: the Gram matrix XᵀX of a linear group's inputs, the
// dampened, permuted Hessian's factor U (H⁻¹ = UᵀU) and the column loop with its lazy updates;
// the result is the same canonical QuantizedWeight gptq.ts returns.
import type { GptqOptions, GptqResult } from './gptq.ts';

/** The inputs of one group of linears (q/k/v, o, gate/up, down): the calibration rows x [rows, K] (fp32), or a CPU Hessian 2·XᵀX/n. */
export type GptqGroupInput = { x: Float32Array; rows: number } | { hessian: Float64Array };

export interface GptqGroup {
  /** GPTQ of W [N, K] (fp32, row-major) against the group's factor (gptqQuantize's options and result). */
  quantize(w: Float32Array, N: number, opts: GptqOptions): GptqResult;
}

export interface GptqDevice {
  /** e.g. "cuda (NVIDIA H200)", for notes */
  readonly label: string;
  /** Factor one group's Hessian (prepareHessian's dead-input fix, act-order permutation and dampening).
   *  Only one group is live at a time: beginning a group gives the previous one's device memory back. */
  beginGroup(input: GptqGroupInput, K: number, opts: { percdamp?: number; actOrder?: boolean; name?: string }): GptqGroup;
  /** Give every device resource back (the object is unusable afterwards). */
  dispose(): void;
}
