// The speed trick shared by the W4A8 CPU linears: every group partial sum
// P_g[t,n] = Σ_{k∈g} q_x[t,k]·q_w[n,k] is an integer with |P_g| ≤ 127·8·256 < 2^24, so fp32
// arithmetic computes it EXACTLY in any order: one fast float matmul per group (strided views of
// q_x and q_w in the shared wasm heap, no copies) gives all P_g.
import { matmulStridedHeap } from '../core/matmul.ts';
import { scratchF32, toHeap } from '../core/wasm-heap.ts';
import type { QuantizedWeight } from './rtn.ts';

/** q_w as fp32 in the heap, shared by every linear built on the same QuantizedWeight. */
const heapWeights = new WeakMap<QuantizedWeight, Float32Array>();

export class GroupPartials {
  readonly groups: number;
  private readonly weights: Float32Array; // q_w [N, K] as fp32, in the heap

  constructor(private readonly qw: QuantizedWeight) {
    this.groups = qw.inFeatures / qw.groupSize;
    let w = heapWeights.get(qw);
    if (!w) {
      w = toHeap(Float32Array.from(qw.q));
      heapWeights.set(qw, w);
    }
    this.weights = w;
  }

  /** Calls visit(g, P_g) for g = 0, 1, ... in order; P_g is [M, N] and reused between calls. */
  forEach(qx: Int8Array, rows: number, visit: (group: number, partial: Float32Array) => void): void {
    const { outFeatures: N, inFeatures: K, groupSize: G } = this.qw;
    const x = scratchF32('quant.qx', rows * K);
    for (let i = 0; i < rows * K; i++) x[i] = qx[i]!;
    const partial = scratchF32('quant.partial', rows * N);
    for (let g = 0; g < this.groups; g++) {
      matmulStridedHeap(x.subarray(g * G), K, this.weights.subarray(g * G), K, partial, N, rows, N, G);
      visit(g, partial);
    }
  }
}

/** Transpose per-(n, g) values [N, groups] to [groups, N] for contiguous epilogue loops. */
export function transposeGroups<T extends Float32Array | Int32Array>(values: T, outFeatures: number, groups: number, make: (n: number) => T): T {
  const out = make(values.length);
  for (let n = 0; n < outFeatures; n++) {
    for (let g = 0; g < groups; g++) out[g * outFeatures + n] = values[n * groups + g]!;
  }
  return out;
}
