// The calibration pipeline's layer forward on the CPU (calib-ops.ts's LayerOps over layer-forward.ts):
// an Act is a Float32Array (a view for rows()), in the WebAssembly heap where the pool's threads work
// on it in place, or a plain JS array for the large whole-layer ones that only plain loops touch.
import { fail } from '../core/errors.ts';
import { heapF32, heapFree } from '../core/matmul.ts';
import type { ModelConfig } from '../model/config.ts';
import type { RopeTables } from '../model/rope.ts';
import type { Act, HostPlace, LayerOps, OpsWeight } from './calib-ops.ts';
import type { DeviceGram } from './gptq-device.ts';
import type { InputStats } from './hessian.ts';
import { addRows, attentionRows, calibRope, linearRows, rmsNormRows, swigluRows } from './layer-forward.ts';
import { dequantize, type QuantizedWeight } from './rtn.ts';

/** Default rows per chunk: at LLaMA-2-7B shapes the MLP's two [rows, 11008] fp32 chunks are 90 MB each. */
export const CPU_CHUNK_ROWS = 2048;
/** docs-llama-30m's 128 × 512 windows (402 MB) are kept; LLaMA-2-7B's (2.9 GB) are recomputed. */
export const CPU_KEEP_BYTES = 512 * 2 ** 20;

class HostAct implements Act {
  constructor(readonly data: Float32Array, readonly rows: number, readonly width: number) {}
}

class HostWeight implements OpsWeight {
  constructor(readonly w: Float32Array, readonly N: number, readonly K: number) {}
}

const host = (a: Act): HostAct => {
  if (!(a instanceof HostAct)) fail('calibration', 'activations of another device given to the CPU ops');
  return a;
};
const hostWeight = (w: OpsWeight): HostWeight => {
  if (!(w instanceof HostWeight)) fail('calibration', 'a weight of another device given to the CPU ops');
  return w;
};

export class CpuLayerOps implements LayerOps {
  readonly label = 'cpu';
  readonly chunkRows = CPU_CHUNK_ROWS;
  readonly keepBytes = CPU_KEEP_BYTES;
  /** heap allocations not yet given back (released on errors) */
  private readonly owned = new Set<Float32Array>();
  private rope: { T: number; tables: RopeTables } | undefined;

  constructor(private readonly c: ModelConfig) {}

  alloc(rows: number, width: number, place: HostPlace = 'heap'): Act {
    if (place === 'js') return new HostAct(new Float32Array(rows * width), rows, width);
    const a = heapF32(rows * width);
    this.owned.add(a);
    return new HostAct(a, rows, width);
  }

  fromHost(data: Float32Array, rows: number, width: number): Act {
    if (data.length !== rows * width) fail('calibration', `rows have ${data.length} values, expected ${rows}x${width}`);
    return new HostAct(data, rows, width);
  }

  rows(a: Act, r0: number, r1: number): Act {
    const h = host(a);
    return new HostAct(h.data.subarray(r0 * h.width, r1 * h.width), r1 - r0, h.width);
  }

  free(a: Act): void {
    const h = host(a);
    if (this.owned.delete(h.data)) heapFree(h.data); // a view or a wrapped host array is not in `owned`
  }

  read(a: Act): Float32Array { return host(a).data; }

  copy(dst: Act, src: Act): void { host(dst).data.set(host(src).data); }

  weight(w: Float32Array, N: number, K: number): OpsWeight { return new HostWeight(w, N, K); }

  dequantized(qw: QuantizedWeight): OpsWeight {
    const a = heapF32(qw.outFeatures * qw.inFeatures);
    this.owned.add(a);
    return new HostWeight(dequantize(qw, a), qw.outFeatures, qw.inFeatures);
  }

  freeWeight(w: OpsWeight): void {
    const h = hostWeight(w);
    if (this.owned.delete(h.w)) heapFree(h.w);
  }

  rmsNorm(x: Act, gamma: Float32Array, eps: number, out: Act): Act {
    const hx = host(x);
    rmsNormRows(hx.data, gamma, hx.rows, hx.width, eps, host(out).data);
    return out;
  }

  linear(x: Act, w: OpsWeight, bias: Float32Array | undefined, out: Act): Act {
    const hx = host(x), hw = hostWeight(w);
    linearRows(hx.data, hx.rows, hw.K, hw.w, hw.N, bias, host(out).data);
    return out;
  }

  attention(q: Act, k: Act, v: Act, S: number, T: number, out: Act): Act {
    if (this.rope?.T !== T) this.rope = { T, tables: calibRope(this.c, T) };
    attentionRows(host(q).data, host(k).data, host(v).data, S, T, this.c, this.rope.tables, host(out).data);
    return out;
  }

  swiglu(gate: Act, up: Act): Act {
    swigluRows(host(gate).data, host(up).data);
    return gate;
  }

  addInto(x: Act, y: Act): void { addRows(host(x).data, host(y).data); }

  accumulate(a: Act, stats: InputStats | undefined, gram: DeviceGram | undefined): void {
    const h = host(a);
    stats?.add(h.data, h.rows);
    gram?.add(h.data, h.rows);
  }

  releaseAll(): void {
    for (const a of this.owned) heapFree(a);
    this.owned.clear();
  }
}
