// Typed launch wrapper of the W4 GEMM kernels (w4_gemm.cu, w4_gemm_wgmma.cu, w4_gemv.cu beside this file),
// used by the engine, the benchmark and the GPU tests: plan with planW4Gemm, compile only the planned
// kind and group's entries of the planned file (plan.defines; once per process, and cached on disk
// keyed by source and options), keep a zeroed split-K workspace, and pass the
// documented parameter list (A, sx, Wp, gscales, chan, residual, out, workspace, counters, M, N, K; tile w
// adds the TMA descriptors of A and out).
// Buffers hold the kernel layouts of src/gpu/repack.ts.
import { fail } from '../../core/errors.ts';
import { isWgmmaTile, planW4Gemm, W4_TILES, type W4GemmPlan, type W4PlanOptions } from './w4-gemm-plan.ts';
import { TMA_FLOAT16, TMA_UINT8 } from '../tensor-map.ts';
import type { QuantMode } from '../../core/modes.ts';
import type { DeviceBuffer, Gpu, Kernel, KernelArg, Stream } from '../runtime.ts';

export interface W4Operands {
  /** int8 [M,K] (W4A8) or fp16 [M,K] (W4A16). */
  a: DeviceBuffer | bigint;
  /** fp32 [M] per-token scales (W4A8); unused for W4A16. */
  sx?: DeviceBuffer | bigint;
  /** Repacked int4 weights, N·K/2 bytes. */
  wp: DeviceBuffer | bigint;
  /** IS int32 / FS fp32 / W4A16 fp16 scales [K/G, N]; unused for PC. */
  gscales?: DeviceBuffer | bigint;
  /** IS int8 shifts [N] / PC fp32 channel scales [N]; unused otherwise. */
  chan?: DeviceBuffer | bigint;
  /** fp16 [M,N] added to the output, or absent. */
  residual?: DeviceBuffer | bigint;
  /** fp16 [M,N]. */
  out: DeviceBuffer | bigint;
}

/**
 * Plan a W4 GEMM and compile its entry: the planned entry (+ `variant.suffix`) of the planned file
 * with its defines (+ `variant.defines`). A persistent small-M ring is re-planned for as many
 * blocks as this GPU keeps resident (unless opts fixes gemvBlocksPerSm).
 */
export function compileW4Plan(gpu: Gpu, kind: QuantMode, group: number, M: number, N: number, K: number, opts: W4PlanOptions = {},
  variant: { suffix?: string; defines?: Readonly<Record<string, number>> } = {}): { plan: W4GemmPlan; kernel: Kernel } {
  const planOpts = { smCount: gpu.smCount, arch: gpu.arch, ...opts };
  let plan = planW4Gemm(kind, group, M, N, K, planOpts);
  const kernel = gpu.compile(plan.source, { defines: { ...plan.defines, ...variant.defines } }).fn(`${plan.entry}${variant.suffix ?? ''}`);
  if (plan.smem > 0 && (plan.tile === 'v8' || plan.tile === 'v16') && opts.gemvBlocksPerSm === undefined) {
    // the persistent small-M ring: as many blocks as this GPU keeps resident
    plan = planW4Gemm(kind, group, M, N, K, { ...planOpts, gemvBlocksPerSm: Math.max(1, kernel.residentBlocks(plan.block[0], plan.smem)) });
  }
  return { plan, kernel };
}

export class W4GemmLaunch {
  readonly plan: W4GemmPlan;
  private readonly kernel: Kernel;
  private readonly workspace?: DeviceBuffer;
  private readonly counters?: DeviceBuffer;
  /** Tile w: the TMA descriptor of an activation buffer (the kernels' last parameter). */
  private readonly activationMap?: (a: DeviceBuffer | bigint) => Buffer;
  /** Tile w: the TMA descriptor of an output buffer (stored by TMA when there is no residual). */
  private readonly outputMap?: (out: DeviceBuffer | bigint) => Buffer;

  constructor(gpu: Gpu, readonly kind: QuantMode, readonly group: number,
    readonly M: number, readonly N: number, readonly K: number, opts: W4PlanOptions = {}) {
    ({ plan: this.plan, kernel: this.kernel } = compileW4Plan(gpu, kind, group, M, N, K, opts));
    if (isWgmmaTile(this.plan.tile)) {
      // tile w reads its activations by TMA: the map of A (M rows of K int8 / fp16) in boxes of one
      // 128-byte k-slice × the token tile, encoded (host-only) for each new buffer a launch is given
      const fp16 = kind === 'w4a16', boxRows = W4_TILES[this.plan.tile].bm;
      this.activationMap = lastMapOnly((address) => gpu.tensorMap2d({ address, dtype: fp16 ? TMA_FLOAT16 : TMA_UINT8, rows: M, cols: K, boxRows, boxCols: fp16 ? 64 : 128 }));
      // and the fp16 output [M, N] in boxes of one consumer warpgroup's 64 weight rows × the token tile
      this.outputMap = lastMapOnly((address) => gpu.tensorMap2d({ address, dtype: TMA_FLOAT16, rows: M, cols: N, boxRows, boxCols: 64 }));
    }
    // Whatever the planner asks for is provided (zeroed once; kernels leave counters zero).
    if (this.plan.workspaceBytes > 0) {
      this.workspace = gpu.alloc(this.plan.workspaceBytes);
      gpu.memset(this.workspace, 0);
    }
    if (this.plan.counters > 0) {
      this.counters = gpu.alloc(this.plan.counters * 4);
      gpu.memset(this.counters, 0);
    }
  }

  /** pdl: programmatic dependent launch (every W4 kernel pdl_waits before reading what a predecessor wrote). */
  launch(ops: W4Operands, stream?: Stream, pdl = false): void {
    const needs = (what: keyof W4Operands, ok: boolean) => {
      if (!ok) fail(`W4 GEMM ${this.kind}`, `operand ${what} is required`);
    };
    needs('sx', this.kind === 'w4a16' || ops.sx !== undefined);
    needs('gscales', this.kind === 'w4a8-pc' || ops.gscales !== undefined);
    needs('chan', !(this.kind === 'w4a8-is' || this.kind === 'w4a8-pc') || ops.chan !== undefined);
    const p = (b: DeviceBuffer | bigint | undefined) => ({ ptr: b ?? 0n });
    const args: KernelArg[] = [
      p(ops.a), p(ops.sx), p(ops.wp), p(ops.gscales), p(ops.chan), p(ops.residual), p(ops.out),
      p(this.workspace), p(this.counters), { i32: this.M }, { i32: this.N }, { i32: this.K },
    ];
    if (this.activationMap && this.outputMap) args.push({ bytes: this.activationMap(ops.a) }, { bytes: this.outputMap(ops.out) });
    this.kernel.launch({ grid: this.plan.grid, block: this.plan.block, smem: this.plan.smem, stream, pdl }, args);
  }

  destroy(): void {
    this.workspace?.free();
    this.counters?.free();
  }
}

/** A buffer's TMA map from `encode`, encoded again only when the buffer differs from the last call's
 *  (launches mostly reuse one buffer; encoding is host work on every eager launch otherwise). */
function lastMapOnly(encode: (address: bigint) => Buffer): (b: DeviceBuffer | bigint) => Buffer {
  let last: { address: bigint; map: Buffer } | undefined;
  return (b) => {
    const address = typeof b === 'bigint' ? b : b.ptr;
    if (last?.address !== address) last = { address, map: encode(address) };
    return last.map;
  };
}
