// Where integer scales get hard (issue 10, item 5): synthetic down_proj-shaped layers at K = 11008
// (LLaMA-2-7B) and 14336 (LLaMA-3-8B), g128, heavy-tailed weights (Student-t-like: normal ×
// a random scale with a heavy tail, 1% of weights ×8) and outlier groups (2% of groups ×16),
// quantized by RTN, integer scales by computeIntegerScales (auto and layer amplifiers). Reports
// the shifts, int32 headroom, coarse/zero scales, weight MSE IS vs FS (vs the original W) and the
// output error of the W4A8-IS and W4A8-FS CPU linears vs the fp32 layer on SwiGLU-like activations
// (silu(a)·b, a few loud channels). Run: node --import tsx src/report/is-stress.ts [--out FILE]
import * as fs from 'node:fs';
import { Rng } from '../core/rng.ts';
import { matmulF32 } from '../core/matmul.ts';
import { computeIntegerScales, type Amplifier } from '../quant/integer-scale.ts';
import { integerScaleReport } from '../quant/is-report.ts';
import { FsLinear } from '../quant/linear-fs.ts';
import { IsLinear } from '../quant/linear-is.ts';
import { quantizeRtn } from '../quant/rtn.ts';

export interface StressRow {
  K: number; N: number; outlier: number; amplifier: string; k_min: number; k_max: number; headroom: number; coarse_scales: number; zero_scales: number;
  rel_err: number; mse_is: number; mse_fs: number; out_err_is: number; out_err_fs: number; out_is_vs_fs: number;
}

export function heavyTailedWeights(rng: Rng, N: number, K: number, G: number, outlierAmp = 16): Float32Array {
  const w = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const rowStd = 0.02 * Math.exp(0.5 * rng.normal());
    for (let g = 0; g < K / G; g++) {
      const groupAmp = rng.next() < 0.02 ? outlierAmp : 1;
      for (let k = g * G; k < (g + 1) * G; k++) {
        const tail = 1 / Math.sqrt(Math.max(1e-3, -Math.log(rng.next() || 1e-9) / 2)); // heavy-tailed multiplier
        w[n * K + k] = rng.normal() * rowStd * Math.min(tail, 20) * groupAmp * (rng.next() < 0.01 ? 8 : 1) * 0.5;
      }
    }
  }
  return w;
}

export function swigluActivations(rng: Rng, M: number, K: number): Float32Array {
  const x = new Float32Array(M * K);
  for (let t = 0; t < M; t++)
    for (let k = 0; k < K; k++) {
      const a = rng.normal(), b = rng.normal();
      x[t * K + k] = (a / (1 + Math.exp(-a))) * b * (k % 997 === 0 ? 30 : 1);
    }
  return x;
}

function relErr(y: Float32Array, ref: Float32Array): number {
  let e = 0, r = 0;
  for (let i = 0; i < y.length; i++) { e += (y[i]! - ref[i]!) ** 2; r += ref[i]! ** 2; }
  return e / r;
}

export function stressRows(Ks: number[], N: number, M: number, amplifiers: Amplifier[], outliers: number[] = [16], seed = 2024): StressRow[] {
  const rows: StressRow[] = [];
  for (const outlier of outliers) for (const K of Ks) {
    const rng = new Rng(seed + K);
    const w = heavyTailedWeights(rng, N, K, 128, outlier);
    const x = swigluActivations(rng, M, K);
    const ref = matmulF32(x, M, K, w, N);
    const qw = quantizeRtn(w, N, K, { group: 128 });
    const fsl = new FsLinear(qw);
    const yFs = fsl.forward(x, M);
    for (const amp of amplifiers) {
      const is = computeIntegerScales(qw, amp, `K${K}`);
      const rep = integerScaleReport(`K${K}`, qw, is, w);
      const isl = new IsLinear(qw, is);
      const yIs = isl.forward(x, M);
      isl.dispose();
      rows.push({
        K, N, outlier, amplifier: String(amp), k_min: rep.k_min, k_max: rep.k_max, headroom: rep.headroom, coarse_scales: rep.coarse_scales, zero_scales: rep.zero_scales,
        rel_err: rep.rel_err, mse_is: rep.mse_is!, mse_fs: rep.mse_fs!, out_err_is: relErr(yIs, ref), out_err_fs: relErr(yFs, ref), out_is_vs_fs: relErr(yIs, yFs),
      });
    }
    fsl.dispose?.();
  }
  return rows;
}

export function stressMarkdown(rows: StressRow[]): string {
  const e = (v: number) => v.toExponential(3);
  return [
    '| K | outlier groups | amplifier | k range | headroom | coarse / zero ŝ | mean ŝ rel err | weight MSE IS | weight MSE FS | out err IS | out err FS | IS vs FS |',
    '|---:|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.K} | ×${r.outlier} | ${r.amplifier} | ${r.k_min}–${r.k_max} | ${r.headroom.toFixed(3)} | ${r.coarse_scales} / ${r.zero_scales} | ${e(r.rel_err)} | ${e(r.mse_is)} | ${e(r.mse_fs)} | ${e(r.out_err_is)} | ${e(r.out_err_fs)} | ${e(r.out_is_vs_fs)} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = stressRows([4096, 11008, 14336], 256, 64, ['auto', 'layer'], [16, 256]);
  const md = stressMarkdown(rows);
  const i = process.argv.indexOf('--out');
  if (i >= 0) fs.writeFileSync(process.argv[i + 1]!, JSON.stringify({ rows }, null, 1) + '\n');
  process.stdout.write(md + '\n');
  process.exit(0);
}
