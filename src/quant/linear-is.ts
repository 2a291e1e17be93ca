// W4A8 with integer scales (IS), docs/QUANT_SPEC.md: acc = Σ_g P_g·ŝ_g in int32 (proven not to
// overflow, see integer-scale.ts), y = fp32(fp32(acc)·s_x)·2^-k_n.
// IsLinear is the fast CPU path (float matmul for the exact P_g); isLinearRef is the plain loop.
import type { Linear } from '../model/linear.ts';
import { quantizeActivations } from './act-quant.ts';
import { GroupPartials, transposeGroups } from './group-partials.ts';
import { assertNoOverflow, type IntegerScales } from './integer-scale.ts';
import type { QuantizedWeight } from './rtn.ts';

/** The IS epilogue for one output: exact int32 acc → y (fp32). */
export function isEpilogue(acc: number, activationScale: number, shift: number): number {
  return Math.fround(Math.fround(Math.fround(acc) * activationScale) * 2 ** -shift);
}

export class IsLinear implements Linear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly partials: GroupPartials;
  private readonly iscalesByGroup: Float64Array; // [groups, N]
  private readonly inverseAmplifier: Float64Array; // 2^-k_n [N]

  constructor(private readonly qw: QuantizedWeight, private readonly is: IntegerScales, name = 'linear') {
    assertNoOverflow(is, qw, name);
    this.inFeatures = qw.inFeatures;
    this.outFeatures = qw.outFeatures;
    this.partials = new GroupPartials(qw);
    this.iscalesByGroup = Float64Array.from(transposeGroups(is.iscales, qw.outFeatures, this.partials.groups, (n) => new Int32Array(n)));
    this.inverseAmplifier = Float64Array.from(is.shift, (k) => 2 ** -k);
  }

  /** Release the heap copy of the weights (shared with other linears of the same QuantizedWeight). */
  dispose(): void {
    this.partials.release();
  }

  forward(x: Float32Array, rows: number): Float32Array {
    const N = this.outFeatures;
    const { q, scale } = quantizeActivations(x, rows, this.inFeatures);
    const acc = new Float64Array(rows * N); // integer-valued, |acc| < 2^31: exact in a double
    this.partials.forEach(q, rows, (g, partial) => {
      const iscales = this.iscalesByGroup.subarray(g * N, (g + 1) * N);
      for (let t = 0; t < rows; t++) {
        const base = t * N;
        for (let n = 0; n < N; n++) acc[base + n]! += partial[base + n]! * iscales[n]!;
      }
    });
    const y = new Float32Array(rows * N);
    const inv = this.inverseAmplifier;
    for (let t = 0; t < rows; t++) {
      const sx = scale[t]!, base = t * N;
      // = isEpilogue(acc, s_x, k_n), inlined
      for (let n = 0; n < N; n++) y[base + n] = Math.fround(Math.fround(acc[base + n]!) * sx) * inv[n]!;
    }
    return y;
  }
}

/** Plain-loop IS reference: y[M, N] for x[M, K] (activation quantization included). */
export function isLinearRef(x: Float32Array, rows: number, qw: QuantizedWeight, is: IntegerScales): Float32Array {
  const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
  const groups = K / G;
  const { q: qx, scale } = quantizeActivations(x, rows, K);
  const y = new Float32Array(rows * N);
  for (let t = 0; t < rows; t++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let g = 0; g < groups; g++) {
        let p = 0;
        for (let k = g * G; k < (g + 1) * G; k++) p += qx[t * K + k]! * qw.q[n * K + k]!;
        acc += p * is.iscales[n * groups + g]!;
      }
      y[t * N + n] = isEpilogue(acc, scale[t]!, is.shift[n]!);
    }
  }
  return y;
}
