// GPTQ on the GPU (the CUDA backend of src/quant/gptq.ts, fp32 where the CPU uses float64): the
// Gram matrix Σxᵀx of the calibration inputs (cuBLASLt, fp16 or fp32 inputs, fp32 accumulation),
// the factor (factor.ts) and the column loop: per block of ≤ 128 columns one gptq_block kernel
// quantizes the block for every row (rows are independent given U) and the block's errors update
// the later columns in one GEMM, W[:, i2:] −= Err·U[i1:i2, i2:]. Output: gptqQuantize's canonical
// QuantizedWeight (int4 values + fp16-exact scales) and loss. The clip search (--clip) is CPU-only.
// As a GptqDevice (src/quant/gptq-device.ts) it serves the calibration pipeline, whose layer forward
// it runs too (../calib/layer-ops.ts: the activations stay on the device and feed the Gram directly).
import { fail } from '../../core/errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import { GPTQ_DEFAULTS, type GptqOptions, type GptqResult } from '../../quant/gptq.ts';
import type { DeviceGram, GptqDevice, GptqGroup, GptqGroupInput } from '../../quant/gptq-device.ts';
import { resolveGroupSize } from '../../quant/rtn.ts';
import { Gpu, type DeviceBuffer } from '../runtime.ts';
import { factorOnDevice, type DeviceFactor } from './factor.ts';
import { GPTQ_MAX_BLOCK, GptqKernels, type Ptr } from './gptq-kernels.ts';
import { LtMatmul } from './lt-matmul.ts';
import { CudaLayerOps, type DeviceRowsGram } from '../calib/layer-ops.ts';

/** Calibration rows uploaded per Gram GEMM when the inputs come from the host (bounds device memory). */
const GRAM_UPLOAD_ROWS = 8192;

/** Why the GPU solver cannot run these options, or undefined (the CPU path has no such limits). */
export function gpuGptqUnsupported(opts: { clip?: boolean; blockSize?: number; moe?: boolean }): string | undefined {
  if (opts.moe) return 'a mixture of experts (per-expert row gathers) calibrates on the CPU only';
  if (opts.clip) return "GPTQ's output-error clip search (--clip) runs on the CPU only";
  const B = opts.blockSize ?? GPTQ_DEFAULTS.blockSize;
  if (B > GPTQ_MAX_BLOCK) return `the CUDA GPTQ takes blocks of at most ${GPTQ_MAX_BLOCK} columns (got --block-size ${B})`;
  return undefined;
}

/** Device weights: fp16 or fp32, row-major [N, K]. */
export interface DeviceWeight { ptr: Ptr; f16: boolean }

export class GpuGptq implements GptqDevice {
  readonly label: string;
  private readonly kernels: GptqKernels;
  private readonly mm: LtMatmul;
  private live: DeviceFactor | undefined;

  constructor(readonly gpu: Gpu = Gpu.open()) {
    this.kernels = new GptqKernels(gpu);
    this.mm = new LtMatmul(gpu);
    this.label = `cuda (${gpu.name})`;
  }

  /** gram [K, K] fp32 (+)= xᵀx for x [rows, K] row-major on the device; `accumulate` adds to gram's contents. */
  gramInto(gram: DeviceBuffer, x: Ptr, rows: number, K: number, inType: 'f16' | 'f32', accumulate: boolean): void {
    if (gram.bytes < K * K * 4) fail('gptq', `Gram buffer of ${gram.bytes} bytes is too small for K = ${K}`);
    const xp = typeof x === 'bigint' ? x : x.ptr;
    this.mm.run({ m: K, n: K, k: rows, transA: true, transB: false, lda: K, ldb: K, ldc: K, inType }, xp, xp, gram.ptr, 1, accumulate ? 1 : 0);
  }

  /** A new, empty Σxᵀx accumulator on the device, summed by fp32 GEMMs: of host rows (uploaded in
   *  chunks) or of device rows (the layer ops' activations). */
  gram(K: number): DeviceGram {
    return new RowsGram(this, K);
  }

  /** The factor of H = (2/rows)·gram with prepareHessian's fixes (the caller frees it). */
  factor(gram: DeviceBuffer, rows: number, K: number, opts: { percdamp?: number; actOrder?: boolean; name?: string } = {}): DeviceFactor {
    if (!(rows > 0)) fail(opts.name ?? 'calibration', 'no calibration rows');
    return factorOnDevice({ gpu: this.gpu, kernels: this.kernels, mm: this.mm }, gram, K, 2 / rows, opts);
  }

  /** gptqQuantize on the GPU: W [N, K] from the host (fp32) or the device (fp16/fp32). */
  quantize(w: Float32Array | DeviceWeight, N: number, f: DeviceFactor, opts: GptqOptions): GptqResult {
    const name = opts.name ?? 'gptq', K = f.K, gpu = this.gpu, k = this.kernels;
    if (w instanceof Float32Array && w.length !== N * K) fail(name, `has ${w.length} values, expected ${N}x${K}`);
    const G = resolveGroupSize(opts.group, K, name);
    const B = opts.blockSize ?? GPTQ_DEFAULTS.blockSize;
    if (!(Number.isInteger(B) && B >= 1)) fail(name, `block size ${B} must be a positive integer`);
    const why = gpuGptqUnsupported({ ...(opts.clip !== undefined ? { clip: opts.clip } : {}), blockSize: B });
    if (why) fail(name, why);
    const groups = K / G, actOrder = f.perm.some((p, i) => p !== i);
    const owned: DeviceBuffer[] = [];
    const alloc = (bytes: number) => { const b = gpu.alloc(Math.max(bytes, 4)); owned.push(b); return b; };
    try {
      const src = w instanceof Float32Array ? { ptr: (() => { const b = gpu.upload(w); owned.push(b); return b; })() as Ptr, f16: false } : w;
      const wp = alloc(N * K * 4), scales = alloc(N * groups * 4), err = alloc(N * GPTQ_MAX_BLOCK * 4);
      const qp = alloc(N * K), q = alloc(N * K), loss = alloc(N * 8), bad = alloc(8);
      gpu.memset(bad, 0);
      gpu.memset(loss, 0);
      k.permuteWeights(src.ptr, src.f16, wp, f.permDev, f.deadDev, bad, N, K);
      if (actOrder) k.staticScales(wp, f.invPermDev, scales, bad, N, K, G);
      for (let i1 = 0; i1 < K; i1 += B) {
        const cnt = Math.min(B, K - i1), i2 = i1 + cnt;
        k.block(wp, f.u, err, scales, qp, loss, f.permDev, bad, N, K, G, i1, cnt, actOrder);
        if (i2 < K) // W[:, i2:] −= Err · U[i1:i2, i2:]
          this.mm.run({ m: N, n: K - i2, k: cnt, transA: false, transB: false, lda: GPTQ_MAX_BLOCK, ldb: K, ldc: K, inType: 'f32' },
            err.ptr, f.u.ptr + BigInt((i1 * K + i2) * 4), wp.ptr + BigInt(i2 * 4), -1, 1);
      }
      k.unpermuteQ(qp, q, f.permDev, N, K);
      const badRows = gpu.download(bad, new Int32Array(2));
      if (badRows[0]) fail(name, `non-finite weight in row ${badRows[0] - 1}`);
      if (badRows[1]) fail(name, `row ${badRows[1] - 1}: a group's absmax overflows an fp16 scale`);
      const out = {
        q: gpu.download(q, new Int8Array(N * K)),
        scales: gpu.download(scales, new Float32Array(N * groups)),
        loss: gpu.download(loss, new Float64Array(N)).reduce((a, b) => a + b, 0),
      };
      return { qw: { outFeatures: N, inFeatures: K, groupSize: G, q: out.q, scales: out.scales }, loss: out.loss };
    } finally {
      for (const b of owned) b.free();
    }
  }

  beginGroup(input: GptqGroupInput, K: number, opts: { percdamp?: number; actOrder?: boolean; name?: string }): GptqGroup {
    this.live?.free();
    this.live = undefined;
    let factor: DeviceFactor;
    if ('hessian' in input) {
      if (input.hessian.length !== K * K) fail(opts.name ?? 'gptq', `Hessian has ${input.hessian.length} values, expected ${K}x${K}`);
      const h = this.gpu.upload(Float32Array.from(input.hessian));
      try { factor = this.factor(h, 2, K, opts); } finally { h.free(); } // scale 2/2 = 1: already 2·XᵀX/n
    } else {
      const g = input.gram;
      if (!(g instanceof RowsGram) || g.solver !== this) fail(opts.name ?? 'gptq', 'the Gram accumulator belongs to another GPTQ device');
      if (g.K !== K) fail(opts.name ?? 'gptq', `Gram matrix is for K = ${g.K}, expected ${K}`);
      try { factor = this.factor(g.matrix(), g.rows, K, opts); } finally { g.free(); }
    }
    this.live = factor;
    return {
      quantize: (w, N, o) => {
        if (factor.u.freed) fail(o.name ?? 'gptq', 'its GPTQ group was released (a later group began, or the device was disposed)');
        return this.quantize(w, N, factor, o);
      },
    };
  }

  /** The calibration forward on this GPU, its GEMMs through this solver's cuBLASLt handle. */
  layerOps(c: ModelConfig): CudaLayerOps {
    return new CudaLayerOps(this.gpu, this.mm, c);
  }

  dispose(): void {
    this.live?.free();
    this.live = undefined;
    this.mm.destroy();
  }
}

/** Σxᵀx on the device (GpuGptq.gram) in one fp32 [K, K] matrix, by fp32 GEMMs: add() uploads host rows
 *  in chunks of GRAM_UPLOAD_ROWS, addDevice() takes rows already on the device. */
export class RowsGram implements DeviceRowsGram {
  rows = 0;
  private buf: DeviceBuffer | undefined;
  constructor(readonly solver: GpuGptq, readonly K: number) {}

  add(x: Float32Array, rows: number): void {
    const K = this.K, gpu = this.solver.gpu;
    if (x.length < rows * K) fail('calibration', `input has ${x.length} values, expected ${rows}x${K}`);
    if (rows === 0) return;
    const chunk = gpu.alloc(Math.min(rows, GRAM_UPLOAD_ROWS) * K * 4);
    try {
      for (let r0 = 0; r0 < rows; r0 += GRAM_UPLOAD_ROWS) {
        const r1 = Math.min(rows, r0 + GRAM_UPLOAD_ROWS);
        gpu.copyToDevice(chunk, x.subarray(r0 * K, r1 * K));
        this.addDevice(chunk.ptr, r1 - r0);
      }
    } finally {
      chunk.free();
    }
  }

  addDevice(x: bigint, rows: number): void {
    if (rows === 0) return;
    this.buf ??= this.solver.gpu.alloc(this.K * this.K * 4);
    this.solver.gramInto(this.buf, x, rows, this.K, 'f32', this.rows > 0);
    this.rows += rows;
  }

  /** The summed matrix (fails before any row). */
  matrix(): DeviceBuffer {
    if (!this.buf) fail('calibration', 'no calibration rows');
    return this.buf;
  }

  free(): void {
    if (this.buf && !this.buf.freed) this.buf.free();
    this.buf = undefined;
  }
}
