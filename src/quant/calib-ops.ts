// The arithmetic of the calibration pipeline's layer forward (calibrate.ts) behind one interface, so
// that one pipeline runs on the CPU (calib-ops-cpu.ts, over layer-forward.ts) or on a device (the CUDA
// one: src/gpu/calib/layer-ops.ts, made by the GPTQ device). Activations live where the ops compute:
// an Act is an opaque block of fp32 rows [rows, width] there; the host sees them only through read()
// (statistics kept on the CPU) and they reach a device Gram through accumulate().
// Pure types: the pipeline imports no GPU code.
import type { DeviceGram } from './gptq-device.ts';
import type { InputStats } from './hessian.ts';
import type { QuantizedWeight } from './rtn.ts';

/** fp32 rows [rows, width] on the ops' device: a whole allocation or a view of some of its rows. */
export interface Act {
  readonly rows: number;
  readonly width: number;
}

/** A linear's weight W [N, K] prepared for linear(). */
export interface OpsWeight {
  readonly N: number;
  readonly K: number;
}

/** Where the CPU keeps an allocation (other devices ignore it): in the WebAssembly heap, where its
 *  pool threads work in place (chunk buffers), or in a plain JS array (large arrays used as a whole). */
export type HostPlace = 'heap' | 'js';

export interface LayerOps {
  /** e.g. "cpu" or "cuda (NVIDIA H200)", for notes */
  readonly label: string;
  /** Default token rows per pipeline chunk (whole windows). */
  readonly chunkRows: number;
  /** Default for the pipeline's mlpKeepBytes: down_proj's input is kept for the layer's output up to this size. */
  readonly keepBytes: number;
  /** [rows, width], contents undefined. */
  alloc(rows: number, width: number, place?: HostPlace): Act;
  /** The host rows data [rows, width] as an Act (the CPU wraps it; a device copies it in). */
  fromHost(data: Float32Array, rows: number, width: number): Act;
  /** Rows [r0, r1) of a, sharing its storage. */
  rows(a: Act, r0: number, r1: number): Act;
  /** Give an allocation back (views need not be freed). */
  free(a: Act): void;
  /** a's values on the host: the CPU's own array, or a device's copy valid until the next read(). */
  read(a: Act): Float32Array;
  /** dst ← src (same shape). */
  copy(dst: Act, src: Act): void;

  /** An fp32 weight [N, K] (row-major) for linear(); it must not change while prepared. */
  weight(w: Float32Array, N: number, K: number): OpsWeight;
  /** A quantized linear's dequantized weight (q·scale) for linear(). */
  dequantized(qw: QuantizedWeight): OpsWeight;
  freeWeight(w: OpsWeight): void;

  /** out = RMSNorm(x)·gamma (layer-forward.ts rmsNormRows). */
  rmsNorm(x: Act, gamma: Float32Array, eps: number, out: Act): Act;
  /** out = x·Wᵀ (+ bias). */
  linear(x: Act, w: OpsWeight, bias: Float32Array | undefined, out: Act): Act;
  /** Causal GQA attention of S windows of T rows (RoPE applied to q and k in place) into out. */
  attention(q: Act, k: Act, v: Act, S: number, T: number, out: Act): Act;
  /** gate ← silu(gate)·up; returns gate. */
  swiglu(gate: Act, up: Act): Act;
  /** x += y. */
  addInto(x: Act, y: Act): void;
  /** Add a's rows to an input's statistics: the CPU's (when given) and a device Gram (when given). */
  accumulate(a: Act, stats: InputStats | undefined, gram: DeviceGram | undefined): void;
  /** Give back every allocation and weight still held (after an error; idempotent). */
  releaseAll(): void;
}
