// The W4 GEMM tests' device side: one W4Case (w4-reference.ts) uploaded in every kernel layout, a
// launch of one kind with a poisoned output scanned whole, and the sampled comparison of outputs
// against the CPU reference (IS / PC bit-exact, FS / W4A16 within their fp32 bounds). Shared by
// w4-gemm.test.ts and grouped-gemm.test.ts.
import assert from 'node:assert/strict';
import type { QuantMode } from '../../src/core/modes.ts';
import { f16ToF32, f32ArrayToF16, f32ToF16 } from '../../src/core/dtype.ts';
import type { Rng } from '../../src/core/rng.ts';
import { W4GemmLaunch } from '../../src/gpu/kernels/w4-gemm-launch.ts';
import type { W4Tile } from '../../src/gpu/kernels/w4-gemm-plan.ts';
import { packFloatScales, packHalfScales, packIntScales, repackWeights } from '../../src/gpu/repack.ts';
import type { DeviceBuffer, Gpu } from '../../src/gpu/runtime.ts';
import { packInt4 } from '../../src/quant/pack-int4.ts';
import { FP16_OUT_REL_TOL, fsAt, groupPartials, isAt, pcAt, w4a16At, type W4Case } from './w4-reference.ts';

export const POISON = 0xffff;

export interface DeviceCase {
  wp8: DeviceBuffer; wp16: DeviceBuffer; iscales: DeviceBuffer; shifts: DeviceBuffer;
  fscales: DeviceBuffer; hscales: DeviceBuffer; pcScales: DeviceBuffer;
  qx: DeviceBuffer; sx: DeviceBuffer; x16: DeviceBuffer; out: DeviceBuffer; residual: DeviceBuffer;
  residualHost: Uint16Array;
}

export function uploadCase(gpu: Gpu, c: W4Case, rng: Rng): DeviceCase {
  const { K, N, G } = c;
  const packed = packInt4(c.qw.q, N, K);
  const groups = K / G;
  const residualHost = f32ArrayToF16(rng.normals(c.M * N, 2));
  return {
    wp8: gpu.upload(repackWeights(packed, N, K, 'w4a8')),
    wp16: gpu.upload(repackWeights(packed, N, K, 'w4a16')),
    iscales: gpu.upload(packIntScales(c.is.iscales, N, groups)),
    shifts: gpu.upload(c.is.shift),
    fscales: gpu.upload(packFloatScales(c.qw.scales, N, groups)),
    hscales: gpu.upload(packHalfScales(c.qw.scales, N, groups)),
    pcScales: gpu.upload(c.qwPc.scales),
    qx: gpu.upload(c.qx),
    sx: gpu.upload(c.sx),
    x16: gpu.upload(c.x16),
    out: gpu.alloc(c.M * N * 2),
    residual: gpu.upload(residualHost),
    residualHost,
  };
}

/** Launch one kind on the first M rows with a poisoned output; return the fp16 output bits. */
export function runKind(gpu: Gpu, c: W4Case, d: DeviceCase, kind: QuantMode, M: number,
  opts: { splits?: number; residual?: boolean; tile?: W4Tile; smCount?: number; gemvBlocksPerSm?: number } = {}): Uint16Array {
  const launch = new W4GemmLaunch(gpu, kind, c.G, M, c.N, c.K, { splits: opts.splits, tile: opts.tile, smCount: opts.smCount, gemvBlocksPerSm: opts.gemvBlocksPerSm });
  assert.ok(!opts.tile || launch.plan.tile === opts.tile);
  try {
    gpu.memset(d.out, 0xff);
    const { weight, gscales, chan } = kindOperands(d, kind);
    launch.launch({ a: kind === 'w4a16' ? d.x16 : d.qx, sx: d.sx, wp: weight, gscales, chan, residual: opts.residual ? d.residual : undefined, out: d.out });
    const out = gpu.download(d.out, new Uint16Array(M * c.N));
    const bad = out.findIndex((h) => h === POISON || (h & 0x7c00) === 0x7c00);
    assert.equal(bad, -1, `${kind} M=${M}: output ${bad} is NaN/Inf or never written (0x${out[bad]?.toString(16)})`);
    return out;
  } finally {
    launch.destroy();
  }
}

/** Compare each kind's output with the reference at every position (partials computed once per position). */
export function checkOutputs(c: W4Case, M: number, outs: Map<QuantMode, Uint16Array>, positions: [number, number][], residual?: Uint16Array): void {
  for (const [t, n] of positions) {
    const p = groupPartials(c, t, n);
    const r = residual ? f16ToF32(residual[t * c.N + n]!) : 0;
    for (const [kind, out] of outs) {
      const label = `${kind} M=${M} K=${c.K} N=${c.N} G=${c.G}`;
      const got = out[t * c.N + n]!;
      if (kind === 'w4a8-is' || kind === 'w4a8-pc') {
        const y = kind === 'w4a8-is' ? isAt(c, t, n, p) : pcAt(c, t, n, p);
        const want = f32ToF16(residual ? Math.fround(y + r) : y);
        if (got !== want) assert.fail(`${label}: y[${t},${n}] = ${f16ToF32(got)} (0x${got.toString(16)}), expected ${f16ToF32(want)} (bit-exact)`);
      } else {
        const ref = kind === 'w4a8-fs' ? fsAt(c, t, n, p) : w4a16At(c, t, n);
        const exact = ref.exact + r, bound = ref.bound;  // the residual is added in fp32 before the one rounding
        const tol = FP16_OUT_REL_TOL * Math.abs(exact) + bound + 2 ** -24;
        const err = Math.abs(f16ToF32(got) - exact);
        if (!(err <= tol)) assert.fail(`${label}: y[${t},${n}] = ${f16ToF32(got)}, float64 reference ${exact}, |err| ${err} > tol ${tol}`);
      }
    }
  }
}

export function freeAll(d: DeviceCase): void {
  for (const b of Object.values(d)) if (b && typeof b === 'object' && 'free' in b) (b as DeviceBuffer).free();
}

/** The linear's operands of `kind` in a DeviceCase (weights, group scales, channel factors). */
export function kindOperands(d: DeviceCase, kind: QuantMode): { weight: DeviceBuffer; gscales?: DeviceBuffer; chan?: DeviceBuffer } {
  return {
    weight: kind === 'w4a16' ? d.wp16 : d.wp8,
    gscales: kind === 'w4a8-is' ? d.iscales : kind === 'w4a8-fs' ? d.fscales : kind === 'w4a16' ? d.hscales : undefined,
    chan: kind === 'w4a8-is' ? d.shifts : kind === 'w4a8-pc' ? d.pcScales : undefined,
  };
}
