// The speed trick shared by the W4A8 CPU linears: every group partial sum
// P_g[t,n] = Σ_{k∈g} q_x[t,k]·q_w[n,k] is an integer with |P_g| ≤ 127·8·256 < 2^24, so fp32
// arithmetic computes it EXACTLY in any order: one fast float matmul per group slice gives all P_g.
import { matmulF32 } from '../core/matmul.ts';
import type { QuantizedWeight } from './rtn.ts';

export class GroupPartials {
  readonly groups: number;
  /** Per group g: q_w[:, g·G:(g+1)·G] as fp32, row-major [N, G]. */
  private readonly weightSlices: Float32Array[];

  constructor(private readonly qw: QuantizedWeight) {
    const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
    this.groups = K / G;
    this.weightSlices = [];
    for (let g = 0; g < this.groups; g++) {
      const slice = new Float32Array(N * G);
      for (let n = 0; n < N; n++) {
        for (let j = 0; j < G; j++) slice[n * G + j] = qw.q[n * K + g * G + j]!;
      }
      this.weightSlices.push(slice);
    }
  }

  /** Calls visit(g, P_g) for g = 0, 1, ... in order; P_g is [M, N] and reused between calls. */
  forEach(qx: Int8Array, rows: number, visit: (group: number, partial: Float32Array) => void): void {
    const { outFeatures: N, inFeatures: K, groupSize: G } = this.qw;
    const xSlice = new Float32Array(rows * G);
    const partial = new Float32Array(rows * N);
    for (let g = 0; g < this.groups; g++) {
      for (let t = 0; t < rows; t++) {
        const src = t * K + g * G;
        for (let j = 0; j < G; j++) xSlice[t * G + j] = qx[src + j]!;
      }
      matmulF32(xSlice, rows, G, this.weightSlices[g]!, N, partial);
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
