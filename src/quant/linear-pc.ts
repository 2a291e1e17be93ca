// W4A8 per channel (PC, G = K), docs/QUANT_SPEC.md: y = fp32(fp32(P)·s_x)·s[n] with one group,
// so no group epilogue at all (the speed upper bound FS and IS are compared against).
import { fail } from '../core/errors.ts';
import type { Linear } from '../model/linear.ts';
import { quantizeActivations } from './act-quant.ts';
import { GroupPartials } from './group-partials.ts';
import type { QuantizedWeight } from './rtn.ts';

export class PcLinear implements Linear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly partials: GroupPartials;

  constructor(private readonly qw: QuantizedWeight, name = 'linear') {
    if (qw.groupSize !== qw.inFeatures) fail(name, `per-channel W4A8 needs group size = K (${qw.inFeatures}), got ${qw.groupSize}`);
    this.inFeatures = qw.inFeatures;
    this.outFeatures = qw.outFeatures;
    this.partials = new GroupPartials(qw);
  }

  /** Release the heap copy of the weights (shared with other linears of the same QuantizedWeight). */
  dispose(): void {
    this.partials.release();
  }

  forward(x: Float32Array, rows: number): Float32Array {
    const N = this.outFeatures;
    const { q, scale } = quantizeActivations(x, rows, this.inFeatures);
    const y = new Float32Array(rows * N);
    this.partials.forEach(q, rows, (_g, partial) => {
      for (let t = 0; t < rows; t++) {
        for (let n = 0; n < N; n++) y[t * N + n] = Math.fround(Math.fround(partial[t * N + n]! * scale[t]!) * this.qw.scales[n]!);
      }
    });
    return y;
  }
}

/** Plain-loop PC reference. */
export function pcLinearRef(x: Float32Array, rows: number, qw: QuantizedWeight): Float32Array {
  const { outFeatures: N, inFeatures: K } = qw;
  const { q: qx, scale } = quantizeActivations(x, rows, K);
  const y = new Float32Array(rows * N);
  for (let t = 0; t < rows; t++) {
    for (let n = 0; n < N; n++) {
      let p = 0;
      for (let k = 0; k < K; k++) p += qx[t * K + k]! * qw.q[n * K + k]!;
      y[t * N + n] = Math.fround(Math.fround(p * scale[t]!) * qw.scales[n]!);
    }
  }
  return y;
}
