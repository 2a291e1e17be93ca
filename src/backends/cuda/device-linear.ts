// A projection on the GPU and how it runs: FP16 through cuBLASLt (fp16 in/out, fp32 accumulate,
// residual as its C operand), the LM head through cuBLASLt with fp32 logits, W4A16 / W4A8-FS / IS /
// PC through our W4 GEMM kernels (planner + launcher of src/gpu/kernels/w4-gemm-*.ts, residual fused
// in their epilogue). Plans are made per shape and row count M on first use and kept, so a captured
// decode graph replays exactly the kernels its warm-up ran; linears of one shape (every layer's, every
// expert's) share a plan: the weights are launch operands, and a plan's split-K workspace is only
// touched after the kernel's griddepcontrol.wait, so consecutive GEMMs on one stream never overlap on it.
// A mixture of experts' projections of small steps run grouped (runGrouped: every routed expert in
// one launch, the row counts read on the device).
import { fail } from '../../core/errors.ts';
import { CublasLtGemm, WORKSPACE_BYTES } from '../../gpu/gemm-baselines.ts';
import { GroupedGemmLaunch } from '../../gpu/kernels/grouped-gemm.ts';
import { W4GemmLaunch } from '../../gpu/kernels/w4-gemm-launch.ts';
import type { DeviceBuffer, Gpu, Stream } from '../../gpu/runtime.ts';
import type { LinearHandle } from '../../model/forward.ts';
import type { Ptr } from './kernels.ts';
import type { Mode, QuantMode } from '../../core/modes.ts';

/** How a linear's weights are stored and run. */
export type LinearKind = Mode;

/** What a linear's input must be: fp16 rows, or int8 rows with per-row fp32 scales. */
export type InputFormat = 'f16' | 'q8';

/** Which projection of a layer (picks the engine's output buffer); 'w4' until placed. */
export type LinearRole = 'qkv' | 'o' | 'gateUp' | 'down' | 'head' | 'router' | 'w4';

export interface DeviceLinear extends LinearHandle {
  readonly kind: LinearKind;
  readonly role: LinearRole;
  /** fp16 [N, K] (row-major, HF layout) or the repacked int4 of src/gpu/repack.ts. */
  readonly weight: DeviceBuffer;
  /** W4 only: group size (K for PC) and the kernel-layout scales of the W4 GEMM ABI. */
  readonly group?: number;
  readonly gscales?: DeviceBuffer;
  readonly chan?: DeviceBuffer;
}

export function inputFormat(l: DeviceLinear): InputFormat {
  return l.kind === 'w4a8-is' || l.kind === 'w4a8-fs' || l.kind === 'w4a8-pc' ? 'q8' : 'f16';
}

export function freeLinear(l: DeviceLinear): void {
  l.weight.free();
  l.gscales?.free();
  l.chan?.free();
}

/** The GEMM plans of one engine: cuBLASLt descriptors and W4 launches, cached by (linear, M). */
export class GemmRunner {
  private readonly workspace: DeviceBuffer;
  private readonly cublas = new Map<string, CublasLtGemm>();
  private readonly w4 = new Map<string, W4GemmLaunch>();
  private readonly grouped = new Map<string, GroupedGemmLaunch>();

  constructor(private readonly gpu: Gpu) {
    this.workspace = gpu.alloc(WORKSPACE_BYTES);
  }

  private cublasFor(kind: 'fp16' | 'fp16f32', M: number, N: number, K: number): CublasLtGemm {
    const key = `${kind}:${M}:${N}:${K}`;
    let g = this.cublas.get(key);
    if (!g) this.cublas.set(key, (g = new CublasLtGemm(this.gpu, kind, M, N, K, { workspace: this.workspace })));
    return g;
  }

  private w4For(l: DeviceLinear, M: number): W4GemmLaunch {
    const key = `${l.kind}:${l.group}:${M}:${l.outFeatures}:${l.inFeatures}`;
    let g = this.w4.get(key);
    if (!g) this.w4.set(key, (g = new W4GemmLaunch(this.gpu, l.kind as QuantMode, l.group!, M, l.outFeatures, l.inFeatures)));
    return g;
  }

  /**
   * out[M, N] = x·Wᵀ (+ residual; may be `out` itself). x: fp16 [M, K] for fp16/w4a16, int8 [M, K]
   * with scales sx [M] for W4A8. `f32Out` (fp16 linears only): fp32 output (logits).
   */
  run(l: DeviceLinear, M: number, x: { f16: Ptr } | { q: Ptr; sx: Ptr }, out: Ptr, s: Stream,
    opts: { residual?: Ptr; f32Out?: boolean; pdl?: boolean } = {}): void {
    if (l.kind === 'fp16') {
      if (!('f16' in x)) fail('linear', 'an FP16 linear takes fp16 activations');
      if (opts.f32Out && opts.residual) fail('linear', 'fp32 output takes no residual');
      this.cublasFor(opts.f32Out ? 'fp16f32' : 'fp16', M, l.outFeatures, l.inFeatures).run(x.f16, l.weight, out, s, opts.residual);
      return;
    }
    if (opts.f32Out) fail('linear', 'W4 linears write fp16');
    const g = this.w4For(l, M);
    const a = 'f16' in x ? x.f16 : x.q;
    if ((l.kind === 'w4a16') !== ('f16' in x)) fail('linear', `a ${l.kind} linear got the wrong activation format`);
    g.launch({ a, sx: 'sx' in x ? x.sx : undefined, wp: l.weight, gscales: l.gscales, chan: l.chan, residual: opts.residual, out }, s, opts.pdl);
  }

  /**
   * A mixture of experts' projection in one launch (src/gpu/kernels/grouped-gemm.ts): each expert
   * e in `routing.active` (at most `slots` of them) multiplies rows [offsets[e], offsets[e + 1]) of x
   * (expert order, `rows` ≤ 16 in all) by its linear, whose operands `table` (expertTable) lists;
   * `like` is any of the experts' linears.
   */
  runGrouped(like: DeviceLinear, table: DeviceBuffer, routing: { active: DeviceBuffer; offsets: DeviceBuffer; slots: number },
    rows: number, x: { f16: Ptr } | { q: Ptr; sx: Ptr }, out: Ptr, s: Stream, pdl = false): void {
    if ((inputFormat(like) === 'f16') !== ('f16' in x)) fail('linear', `a grouped ${like.kind} linear got the wrong activation format`);
    const key = `${like.kind}:${like.group}:${rows}:${like.outFeatures}:${like.inFeatures}:${routing.slots}`;
    let g = this.grouped.get(key);
    if (!g) this.grouped.set(key, (g = new GroupedGemmLaunch(this.gpu, like.kind, like.group ?? 0, rows, like.outFeatures, like.inFeatures, routing.slots)));
    g.launch({ a: 'f16' in x ? x.f16 : x.q, sx: 'sx' in x ? x.sx : undefined, table, active: routing.active, offsets: routing.offsets, out }, s, pdl);
  }

  destroy(): void {
    for (const g of this.cublas.values()) g.destroy();
    for (const g of this.w4.values()) g.destroy();
    this.cublas.clear();
    this.w4.clear();
    this.grouped.clear();
    this.workspace.free();
  }
}
