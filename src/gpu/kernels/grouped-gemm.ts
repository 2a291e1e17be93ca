// Grouped GEMMs of a mixture of experts: one launch multiplies every expert's block of rows (the
// expert order of moe_route.cu's moe_align, offsets [E + 1] in device memory) by that expert's
// weights, so a decode step needs no host read of the routing and can be captured as a CUDA graph.
// W4 modes run w4_gemv.cu's grouped entries (its v8 / v16 tiles, the same code as the dense
// small-M GEMMs), FP16 f16_gemv.cu's; both take an expert table of GvExpert entries (expertTable)
// and serve steps of up to GROUPED_MAX_ROWS rows (a row's top-K experts are distinct, so no expert
// gets more rows than the step has). Larger steps (prefill) take the per-expert path of the engine.
import { fail } from '../../core/errors.ts';
import type { Mode, QuantMode } from '../../core/modes.ts';
import type { DeviceBuffer, Gpu, Kernel, Stream } from '../runtime.ts';
import { compileW4Plan } from './w4-gemm-launch.ts';

/**
 * f16_gemv.cu's build per tile: 16-row weight tiles per block (FG_R_*) and k32 chunks in flight per
 * warp (FG_UNROLL_*). H200 probe (bench gemm, fp16-gemv × cuBLAS fp16, medians of 4 shapes at
 * M = 1 / 4 / 16; R,U = 1,4: 0.91 / 0.85 / 0.75, 2,2: 0.90 / 0.86 / 0.74, 2,4: 0.86 / 0.82 / 0.86,
 * 4,2: 0.90 / 0.90 / 0.79, 4,1: 0.78 / 0.81 / 0.60): v8 4,2 and v16 2,4.
 * INTSCALE_F16_GEMV="R,U" sets both tiles (experiments only).
 */
export function f16GemvDefines(): Record<string, number> {
  const forced = process.env['INTSCALE_F16_GEMV']?.split(',').map((v) => Number.parseInt(v, 10));
  const [r8, u8, r16, u16] = forced && forced.length === 2 && forced.every((v) => v >= 1 && v <= 8)
    ? [forced[0]!, forced[1]!, forced[0]!, forced[1]!] : [4, 2, 2, 4];
  return { FG_R_V8: r8, FG_UNROLL_V8: u8, FG_R_V16: r16, FG_UNROLL_V16: u16 };
}

/** An f16_gemv.cu entry (f16_gemv_v8, _v16, their _moe) built with f16GemvDefines(), and its grid's row blocks for N rows. */
export function f16GemvKernel(gpu: Gpu, entry: string): { kernel: Kernel; rowBlocks: (N: number) => number } {
  const d = f16GemvDefines(), rowTiles = entry.startsWith('f16_gemv_v8') ? d['FG_R_V8']! : d['FG_R_V16']!;
  const kernel = gpu.compile(F16_GEMV_SOURCE, { defines: d }).fn(entry);
  return { kernel, rowBlocks: (N) => Math.ceil(N / (16 * rowTiles)) };
}

/** Rows of a step the grouped kernels take (their v16 tile's tokens). */
export const GROUPED_MAX_ROWS = 16;
export const F16_GEMV_SOURCE = 'src/gpu/kernels/f16_gemv.cu';

/** What one expert's linear contributes to its table entry (absent pointers are written as 0). */
export interface ExpertOperands {
  readonly weight: DeviceBuffer;
  readonly gscales?: DeviceBuffer;
  readonly chan?: DeviceBuffer;
}

/** The device table of GvExpert entries for `experts` (the caller frees it). */
export function expertTable(gpu: Gpu, experts: readonly ExpertOperands[]): DeviceBuffer {
  const host = new BigUint64Array(experts.length * 3);
  experts.forEach((x, e) => {
    host[3 * e] = x.weight.ptr;
    host[3 * e + 1] = x.gscales?.ptr ?? 0n;
    host[3 * e + 2] = x.chan?.ptr ?? 0n;
  });
  return gpu.upload(host);
}

export interface GroupedOperands {
  /** Rows in expert order: int8 [rows, K] (W4A8) or fp16 [rows, K]. */
  a: DeviceBuffer | bigint;
  /** fp32 [rows] per-row scales (W4A8 only). */
  sx?: DeviceBuffer | bigint;
  /** expertTable of the E experts' linears. */
  table: DeviceBuffer | bigint;
  /** int32 [slots]: the experts with rows, then -1 (moe_align's `active`): y-index i runs expert active[i]. */
  active: DeviceBuffer | bigint;
  /** int32 [E + 1]: expert e's rows are [offsets[e], offsets[e + 1]). */
  offsets: DeviceBuffer | bigint;
  /** fp16 [rows, N], the same row order. */
  out: DeviceBuffer | bigint;
}

/**
 * One grouped projection: experts of N × K in `mode`, planned for steps of at most `maxRows` rows of
 * which at most `slots` experts get rows (min(E, rows · top-K)): the grid's y-extent.
 */
export class GroupedGemmLaunch {
  private readonly kernel: Kernel;
  readonly grid: [number, number, number];
  readonly block: [number, number, number];
  readonly smem: number;
  readonly entry: string;

  constructor(gpu: Gpu, readonly mode: Mode, group: number, readonly maxRows: number, readonly N: number, readonly K: number,
    readonly slots: number) {
    const where = `grouped ${mode} GEMM ${maxRows}x${N}x${K}`;
    if (!Number.isInteger(maxRows) || maxRows < 1 || maxRows > GROUPED_MAX_ROWS) fail(where, `steps of 1..${GROUPED_MAX_ROWS} rows only (got ${maxRows})`);
    if (!Number.isInteger(slots) || slots < 1) fail(where, `${slots} expert slots`);
    if (N % 16 !== 0) fail(where, 'N must be a multiple of 16');
    const tile = maxRows <= 8 ? 'v8' : 'v16';
    if (mode === 'fp16') {
      if (K % 32 !== 0) fail(where, 'K must be a multiple of 32');
      this.entry = `f16_gemv_${tile}_moe`;
      const f = f16GemvKernel(gpu, this.entry);
      this.kernel = f.kernel;
      this.grid = [f.rowBlocks(N), slots, 1];
      this.block = [256, 1, 1];
      this.smem = 0;
      return;
    }
    // w4_gemv.cu's _moe entries on the persistent ring, as many blocks per expert as this GPU keeps resident
    const { plan, kernel } = compileW4Plan(gpu, mode as QuantMode, group, maxRows, N, K, { tile, gemvRing: true }, { suffix: '_moe', defines: { W4_SELECT_GROUPED: 1 } });
    this.entry = `${plan.entry}_moe`;
    this.kernel = kernel;
    this.grid = [plan.grid[0], slots, 1];
    this.block = plan.block;
    this.smem = plan.smem;
  }

  /** pdl: programmatic dependent launch (the kernels pdl_wait before reading active and offsets). */
  launch(ops: GroupedOperands, stream?: Stream, pdl = false): void {
    const p = (b: DeviceBuffer | bigint | undefined) => ({ ptr: b ?? 0n });
    if (this.mode !== 'fp16' && this.mode !== 'w4a16' && ops.sx === undefined) fail(`grouped ${this.mode} GEMM`, 'operand sx is required');
    const args = this.mode === 'fp16'
      ? [p(ops.a), p(ops.table), p(ops.active), p(ops.offsets), p(ops.out), { i32: this.N }, { i32: this.K }]
      : [p(ops.a), p(ops.sx), p(ops.table), p(ops.active), p(ops.offsets), p(ops.out), { i32: this.N }, { i32: this.K }];
    this.kernel.launch({ grid: this.grid, block: this.block, smem: this.smem, stream, pdl }, args);
  }
}
