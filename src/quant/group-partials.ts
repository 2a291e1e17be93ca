// The speed trick shared by the W4A8 CPU linears: every group partial sum
// P_g[t,n] = Σ_{k∈g} q_x[t,k]·q_w[n,k] is an integer with |P_g| ≤ 127·8·256 < 2^24, so fp32
// arithmetic computes it EXACTLY in any order: one fast float matmul per group (strided views of
// q_x and q_w in the shared wasm heap, no copies) gives all P_g.
import { matmulStridedHeap } from '../core/matmul.ts';
import { fail } from '../core/errors.ts';
import { heapFree, scratchF32, toHeap } from '../core/wasm-heap.ts';
import type { QuantizedWeight } from './rtn.ts';

/** q_w as fp32 in the heap, shared by every live linear built on the same QuantizedWeight and
 *  freed when the last of them releases it. */
const heapWeights = new WeakMap<QuantizedWeight, { weights: Float32Array; users: number }>();

export class GroupPartials {
  readonly groups: number;
  private readonly weights: Float32Array; // q_w [N, K] as fp32, in the heap
  private released = false;

  constructor(private readonly qw: QuantizedWeight) {
    this.groups = qw.inFeatures / qw.groupSize;
    let shared = heapWeights.get(qw);
    if (!shared) {
      shared = { weights: toHeap(Float32Array.from(qw.q)), users: 0 };
      heapWeights.set(qw, shared);
    }
    shared.users++;
    this.weights = shared.weights;
  }

  /** Stop using the heap copy of q_w (freed with its last user); forEach fails afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const shared = heapWeights.get(this.qw)!;
    if (--shared.users > 0) return;
    heapFree(shared.weights);
    heapWeights.delete(this.qw);
  }

  /** Calls visit(g, P_g) for g = 0, 1, ... in order; P_g is [M, N] and reused between calls. */
  forEach(qx: Int8Array, rows: number, visit: (group: number, partial: Float32Array) => void): void {
    if (this.released) fail('quantized linear', 'used after dispose()');
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
