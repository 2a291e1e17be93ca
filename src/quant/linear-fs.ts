// W4A8 with float scales (FS), docs/QUANT_SPEC.md: acc_f = fma(fp32(P_g), s_g, acc_f) over groups in
// order, y = fp32(acc_f·s_x). FsLinear is the fast CPU path; fsLinearRef is the plain loop.
import type { Linear } from '../model/linear.ts';
import { quantizeActivations } from './act-quant.ts';
import { fmaF32 } from './fp32.ts';
import { GroupPartials, transposeGroups } from './group-partials.ts';
import type { QuantizedWeight } from './rtn.ts';

export class FsLinear implements Linear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly partials: GroupPartials;
  private readonly scalesByGroup: Float32Array; // [groups, N]

  constructor(private readonly qw: QuantizedWeight) {
    this.inFeatures = qw.inFeatures;
    this.outFeatures = qw.outFeatures;
    this.partials = new GroupPartials(qw);
    this.scalesByGroup = transposeGroups(qw.scales, qw.outFeatures, this.partials.groups, (n) => new Float32Array(n));
  }

  /** Release the heap copy of the weights (shared with other linears of the same QuantizedWeight). */
  dispose(): void {
    this.partials.release();
  }

  forward(x: Float32Array, rows: number): Float32Array {
    const N = this.outFeatures;
    const { q, scale } = quantizeActivations(x, rows, this.inFeatures);
    const acc = new Float32Array(rows * N);
    this.partials.forEach(q, rows, (g, partial) => {
      const scales = this.scalesByGroup.subarray(g * N, (g + 1) * N);
      for (let t = 0; t < rows; t++) {
        const base = t * N;
        for (let n = 0; n < N; n++) acc[base + n] = fmaF32(partial[base + n]!, scales[n]!, acc[base + n]!);
      }
    });
    for (let t = 0; t < rows; t++) {
      for (let n = 0; n < N; n++) acc[t * N + n] = Math.fround(acc[t * N + n]! * scale[t]!);
    }
    return acc;
  }
}

/** Plain-loop FS reference: y[M, N] for x[M, K] (activation quantization included). */
export function fsLinearRef(x: Float32Array, rows: number, qw: QuantizedWeight): Float32Array {
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
        acc = fmaF32(p, qw.scales[n * groups + g]!, acc);
      }
      y[t * N + n] = Math.fround(acc * scale[t]!);
    }
  }
  return y;
}
