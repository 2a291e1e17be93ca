// The calibration pipeline's layer forward on the GPU (calib-ops.ts's LayerOps; made by the CUDA GPTQ
// device, solver.ts): the activations stay on the device for the whole run (the residual x, the
// attention output, the chunk buffers), the linears are fp32 cuBLASLt GEMMs (no TF32), the rest is
// calib_forward.cu. A quantized linear is uploaded as its int4 values and scales and dequantized on
// the device. Statistics kept on the CPU (AWQ's magnitudes, a CPU Hessian) get the rows through
// read(); the GPTQ device's own Gram takes them straight from device memory.
import { fail } from '../../core/errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { Act, LayerOps, OpsWeight } from '../../quant/calib-ops.ts';
import type { DeviceGram } from '../../quant/gptq-device.ts';
import type { InputStats } from '../../quant/hessian.ts';
import { calibRope } from '../../quant/layer-forward.ts';
import type { QuantizedWeight } from '../../quant/rtn.ts';
import type { DeviceBuffer, Gpu } from '../runtime.ts';
import type { LtMatmul } from '../gptq/lt-matmul.ts';
import { CalibKernels } from './calib-kernels.ts';

/** Rows per chunk: the GEMMs like many rows; LLaMA-2-7B's [8192, 11008] fp32 MLP buffers are 360 MB each. */
export const CUDA_CHUNK_ROWS = 8192;
/** down_proj's input is kept on the device up to this size (LLaMA-2-7B at 128 × 512 windows: 2.9 GB),
 *  and up to a quarter of the GPU's memory; past it the pipeline recomputes it chunk by chunk. */
export const CUDA_KEEP_BYTES = 16 * 2 ** 30;

class DeviceAct implements Act {
  constructor(readonly buf: DeviceBuffer, readonly offset: number, readonly rows: number, readonly width: number) {}
  get ptr(): bigint { return this.buf.at(this.offset); }
  get bytes(): number { return this.rows * this.width * 4; }
}

class DeviceWeight implements OpsWeight {
  constructor(readonly buf: DeviceBuffer, readonly N: number, readonly K: number) {}
}

/** A Gram accumulator that can take device rows directly (the CUDA GPTQ's). */
export interface DeviceRowsGram extends DeviceGram {
  addDevice(x: bigint, rows: number): void;
}
const takesDeviceRows = (g: DeviceGram): g is DeviceRowsGram => typeof (g as Partial<DeviceRowsGram>).addDevice === 'function';

export class CudaLayerOps implements LayerOps {
  readonly label: string;
  readonly chunkRows = CUDA_CHUNK_ROWS;
  readonly keepBytes: number;
  private readonly kernels: CalibKernels;
  /** allocations not yet given back (released on errors) */
  private readonly owned = new Set<DeviceBuffer>();
  private rope: { T: number; cos: DeviceBuffer; sin: DeviceBuffer } | undefined;
  private hostScratch = new Float32Array(0);

  constructor(private readonly gpu: Gpu, private readonly mm: LtMatmul, private readonly c: ModelConfig) {
    this.kernels = new CalibKernels(gpu);
    this.label = `cuda (${gpu.name})`;
    this.keepBytes = Math.min(CUDA_KEEP_BYTES, gpu.totalMemBytes / 4);
  }

  private own(bytes: number): DeviceBuffer {
    const b = this.gpu.alloc(Math.max(4, bytes));
    this.owned.add(b);
    return b;
  }

  private give(b: DeviceBuffer): void {
    if (this.owned.delete(b)) b.free();
  }

  /** A small host array on the device for one call (norm weights, biases), freed by the caller. */
  private upload(a: Float32Array): DeviceBuffer {
    const b = this.own(a.byteLength);
    this.gpu.copyToDevice(b, a);
    return b;
  }

  alloc(rows: number, width: number): Act {
    return new DeviceAct(this.own(rows * width * 4), 0, rows, width);
  }

  fromHost(data: Float32Array, rows: number, width: number): Act {
    if (data.length !== rows * width) fail('calibration', `rows have ${data.length} values, expected ${rows}x${width}`);
    return new DeviceAct(this.upload(data), 0, rows, width);
  }

  rows(a: Act, r0: number, r1: number): Act {
    const d = dev(a);
    if (r0 < 0 || r1 > d.rows || r1 < r0) fail('calibration', `rows [${r0}, ${r1}) outside ${d.rows}`);
    return new DeviceAct(d.buf, d.offset + r0 * d.width * 4, r1 - r0, d.width);
  }

  free(a: Act): void {
    const d = dev(a);
    if (d.offset === 0 && d.bytes === d.buf.bytes) this.give(d.buf); // a view of some rows is not an allocation (as on the CPU)
  }

  read(a: Act): Float32Array {
    const d = dev(a), n = d.rows * d.width;
    if (this.hostScratch.length < n) this.hostScratch = new Float32Array(n);
    return this.gpu.download(d.buf, this.hostScratch.subarray(0, n), d.offset);
  }

  copy(dst: Act, src: Act): void {
    const d = dev(dst), s = dev(src);
    if (d.rows !== s.rows || d.width !== s.width) fail('calibration', `copy of [${s.rows}, ${s.width}] into [${d.rows}, ${d.width}]`);
    this.gpu.copy(d.buf, s.buf, s.bytes, d.offset, s.offset);
  }

  weight(w: Float32Array, N: number, K: number): OpsWeight {
    if (w.length !== N * K) fail('calibration', `weight has ${w.length} values, expected ${N}x${K}`);
    return new DeviceWeight(this.upload(w), N, K);
  }

  dequantized(qw: QuantizedWeight): OpsWeight {
    const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
    const q = this.own(N * K), scales = this.upload(qw.scales), out = this.own(N * K * 4);
    try {
      this.gpu.copyToDevice(q, qw.q);
      this.kernels.dequant(q.ptr, scales.ptr, out.ptr, N, K, G);
    } finally {
      this.give(q);
      this.give(scales);
    }
    return new DeviceWeight(out, N, K);
  }

  freeWeight(w: OpsWeight): void { this.give(devWeight(w).buf); }

  rmsNorm(x: Act, gamma: Float32Array, eps: number, out: Act): Act {
    const dx = dev(x), g = this.upload(gamma);
    try { this.kernels.rmsNorm(dx.ptr, g.ptr, dev(out).ptr, dx.rows, dx.width, eps); } finally { this.give(g); }
    return out;
  }

  linear(x: Act, w: OpsWeight, bias: Float32Array | undefined, out: Act): Act {
    const dx = dev(x), dw = devWeight(w), dy = dev(out);
    if (dx.width !== dw.K || dy.width !== dw.N || dy.rows !== dx.rows) fail('calibration', `linear [${dx.rows}, ${dx.width}]·[${dw.N}, ${dw.K}]ᵀ into [${dy.rows}, ${dy.width}]`);
    if (dx.rows === 0) return out;
    this.mm.run({ m: dx.rows, n: dw.N, k: dw.K, transA: false, transB: true, lda: dw.K, ldb: dw.K, ldc: dw.N, inType: 'f32' }, dx.ptr, dw.buf.ptr, dy.ptr, 1, 0);
    if (bias) {
      const b = this.upload(bias);
      try { this.kernels.bias(dy.ptr, b.ptr, dy.rows, dw.N); } finally { this.give(b); }
    }
    return out;
  }

  attention(q: Act, k: Act, v: Act, S: number, T: number, out: Act): Act {
    const c = this.c, hd = c.headDim, dq = dev(q), dk = dev(k);
    if (dq.rows !== S * T) fail('calibration', `attention over ${dq.rows} rows, expected ${S}x${T}`);
    if (this.rope?.T !== T) {
      if (this.rope) { this.give(this.rope.cos); this.give(this.rope.sin); }
      const t = calibRope(c, T);
      this.rope = { T, cos: this.upload(t.cos), sin: this.upload(t.sin) };
    }
    const interleaved = c.rope.layout === 'interleaved', { cos, sin } = this.rope;
    this.kernels.rope(dq.ptr, cos.ptr, sin.ptr, dq.rows, c.nHeads, hd / 2, T, interleaved);
    this.kernels.rope(dk.ptr, cos.ptr, sin.ptr, dk.rows, c.nKvHeads, hd / 2, T, interleaved);
    this.kernels.attention(dq.ptr, dk.ptr, dev(v).ptr, dev(out).ptr, S, T, c.nHeads, c.nKvHeads, hd, c.slidingWindow ?? 0);
    return out;
  }

  swiglu(gate: Act, up: Act): Act {
    const g = dev(gate);
    this.kernels.swiglu(g.ptr, dev(up).ptr, g.rows * g.width);
    return gate;
  }

  addInto(x: Act, y: Act): void {
    const dx = dev(x);
    this.kernels.add(dx.ptr, dev(y).ptr, dx.rows * dx.width);
  }

  accumulate(a: Act, stats: InputStats | undefined, gram: DeviceGram | undefined): void {
    const d = dev(a);
    let host: Float32Array | undefined;
    const onHost = () => (host ??= this.read(a));
    if (stats) {
      if (stats.withGram || stats.withChannels) stats.add(onHost(), d.rows);
      else stats.rows += d.rows; // nothing kept on the CPU: only the count
    }
    if (gram) {
      if (takesDeviceRows(gram)) gram.addDevice(d.ptr, d.rows);
      else gram.add(onHost(), d.rows);
    }
  }

  releaseAll(): void {
    for (const b of this.owned) b.free();
    this.owned.clear();
    this.rope = undefined;
    this.hostScratch = new Float32Array(0);
  }
}

function dev(a: Act): DeviceAct {
  if (!(a instanceof DeviceAct)) fail('calibration', 'activations of another device given to the CUDA ops');
  return a;
}

function devWeight(w: OpsWeight): DeviceWeight {
  if (!(w instanceof DeviceWeight)) fail('calibration', 'a weight of another device given to the CUDA ops');
  return w;
}
