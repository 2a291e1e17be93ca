// Typed launchers of the engine's own kernels (src/gpu/kernels/{layer_ops,rope_kv,attention,attention_decode,sample,
// weights,quantize_act,moe_route,moe_rows}.cu): compiled once per process by NVRTC, each launcher takes device pointers
// and sizes in the order of the kernel's documented ABI and checks the shape limits it states.
// Every launch is asynchronous on the stream given (graph-capturable).
import { fail } from '../../core/errors.ts';
import type { DeviceBuffer, Gpu, Kernel, KernelArg, Stream } from '../../gpu/runtime.ts';

export type Ptr = DeviceBuffer | bigint;
const p = (b: Ptr | undefined): KernelArg => ({ ptr: b ?? 0n });
const i32 = (v: number): KernelArg => ({ i32: v });

const SRC = 'src/gpu/kernels/';
/** Keys per attention tile (KT in attention.cu). */
export const ATTN_KEYS_PER_TILE = 64;
/** Row limits of layer_ops.cu (values held in registers: 256 × 4 × 8 and 1024 × 2 × 8). */
export const RMS_MAX_DIM = 8192;
export const SWIGLU_MAX_HIDDEN = 16384;
/** Head sizes attention.cu and attention_decode.cu are built for. */
export const ATTN_HEAD_DIMS = [64, 128] as const;
/** attention_decode.cu's K/V ring depth (AD_STAGES), query heads per KV head, splits and quantized row limits. */
export const ATTN_DECODE_STAGES = 3;
export const ATTN_DECODE_MAX_REP = 16;
export const ATTN_DECODE_MAX_SPLITS = 64;
export const ATTN_DECODE_MAX_ROW = 8192;
/** moe_route.cu: experts per layer (MOE_MAX_EXPERTS). */
export const MOE_MAX_EXPERTS = 16;

/** moe_route.cu's limits on experts per layer (E) and per row (K). */
function checkExperts(kernel: string, E: number, K: number): void {
  if (!(E >= 1 && E <= MOE_MAX_EXPERTS && K >= 1 && K <= E)) fail(kernel, `${E} experts, ${K} per row: need 1 <= K <= E <= ${MOE_MAX_EXPERTS}`);
}

/** Kernels compiled on their first launch: the mixture-of-experts files (only Mixtral needs them,
 *  so a dense model's engine neither waits for them nor depends on them; the engine's eager warm-up
 *  step launches every kernel before a graph is captured). */
const ON_FIRST_USE: Record<string, string> = { moe_topk: 'moe_route.cu', moe_align: 'moe_route.cu', gather_rows: 'moe_rows.cu', moe_combine: 'moe_rows.cu' };

export class EngineKernels {
  private readonly k: Record<string, Kernel> = {};
  /** Launch with programmatic dependent launch (every kernel here pdl_waits first; sm_90+). */
  pdl = false;
  private readonly load: (file: string, names: string[]) => void;

  constructor(gpu: Gpu) {
    const load = this.load = (file: string, names: string[]) => {
      const mod = gpu.compile(`${SRC}${file}`);
      for (const n of names) this.k[n] = mod.fn(n);
    };
    load('layer_ops.cu', ['embed_rows', 'rmsnorm_f16', 'rmsnorm_q8', 'swiglu_f16', 'swiglu_q8', 'quantize_f32']);
    load('quantize_act.cu', ['quantize_act_per_token']);
    load('rope_kv.cu', ['rope_kv']);
    load('attention.cu', ['attention_hd64_w1', 'attention_hd64_w4', 'attention_hd128_w1', 'attention_hd128_w4']);
    load('attention_decode.cu', ['attention_decode_hd64', 'attention_decode_hd128']);
    load('sample.cu', ['sample_argmax', 'sample_topp', 'advance_step']);
    load('weights.cu', ['bf16_to_f16', 'random_f16', 'rtn_quantize', 'integer_scales', 'repack_w4', 'transpose_scales']);
  }

  private run(name: string, grid: number | [number, number, number], block: number, args: KernelArg[], stream?: Stream, smem = 0): void {
    if (!this.k[name] && ON_FIRST_USE[name]) {
      const file = ON_FIRST_USE[name];
      this.load(file, Object.keys(ON_FIRST_USE).filter((n) => ON_FIRST_USE[n] === file));
    }
    this.k[name]!.launch({ grid, block, smem, stream, pdl: this.pdl }, args);
  }

  // ---- layer ops -------------------------------------------------------------------------------
  embed(table: Ptr, ids: Ptr, out: Ptr, rows: number, vocab: number, dim: number, s?: Stream): void {
    if (dim % 8) fail('embed', `dim ${dim} must be a multiple of 8`);
    this.run('embed_rows', rows, 256, [p(table), p(ids), p(out), i32(vocab), i32(dim)], s);
  }

  /** rows: optional gather (input row of each output row). q8: int8 output + per-row scales. */
  rmsnorm(x: Ptr, w: Ptr, rowsOut: number, dim: number, eps: number, out: { f16: Ptr } | { q: Ptr; sx: Ptr }, gather?: Ptr, s?: Stream): void {
    if (dim % 8 || dim > RMS_MAX_DIM) fail('rmsnorm', `dim ${dim} must be a multiple of 8, at most ${RMS_MAX_DIM}`);
    if ('f16' in out) this.run('rmsnorm_f16', rowsOut, 256, [p(x), p(w), p(gather), p(out.f16), i32(dim), { f32: eps }], s);
    else this.run('rmsnorm_q8', rowsOut, 256, [p(x), p(w), p(gather), p(out.q), p(out.sx), i32(dim), { f32: eps }], s);
  }

  swiglu(gu: Ptr, rows: number, hidden: number, out: { f16: Ptr } | { q: Ptr; sx: Ptr }, s?: Stream): void {
    if (hidden % 8 || hidden > SWIGLU_MAX_HIDDEN) fail('swiglu', `hidden size ${hidden} must be a multiple of 8, at most ${SWIGLU_MAX_HIDDEN}`);
    if ('f16' in out) this.run('swiglu_f16', rows, 1024, [p(gu), p(out.f16), i32(hidden)], s);
    else this.run('swiglu_q8', rows, 1024, [p(gu), p(out.q), p(out.sx), i32(hidden)], s);
  }

  // ---- mixture of experts -------------------------------------------------------------------------
  /** Router + top-K of fp16 rows h [M, dim] against router [E, dim]: experts / weights [M, K]. */
  moeTopk(h: Ptr, router: Ptr, M: number, dim: number, E: number, K: number, experts: Ptr, weights: Ptr, s?: Stream): void {
    if (dim % 8) fail('moe_topk', `dim ${dim} must be a multiple of 8`);
    checkExperts('moe_topk', E, K);
    this.run('moe_topk', M, 512, [p(h), p(router), i32(M), i32(dim), i32(E), i32(K), p(experts), p(weights)], s);
  }

  /** Group the M·K entries of `experts` by expert: offsets [E + 1], perm [M·K], slot [M, K], active [E]. */
  moeAlign(experts: Ptr, M: number, E: number, K: number, offsets: Ptr, perm: Ptr, slot: Ptr, active: Ptr, s?: Stream): void {
    checkExperts('moe_align', E, K);
    this.run('moe_align', 1, 1024, [p(experts), i32(M), i32(E), i32(K), p(offsets), p(perm), p(slot), p(active)], s);
  }

  /** dst row s = src row perm[s] for s < rows (rows of rowBytes bytes: int8 activations, their scales, fp16 rows). */
  gatherRows(src: Ptr, perm: Ptr, dst: Ptr, rows: number, rowBytes: number, s?: Stream): void {
    if (rowBytes % 4 || rowBytes <= 0) fail('gather_rows', `row of ${rowBytes} bytes must be a positive multiple of 4`);
    if (rows > 0) this.run('gather_rows', rows, 128, [p(src), p(perm), p(dst), i32(rows), i32(rowBytes)], s);
  }

  /** residual[r] = fp16(residual[r] + Σ_k weights[r, k] · y[slot[r, k]]): the experts' fp16 outputs (grouped order) into the residual. */
  moeCombine(y: Ptr, slot: Ptr, weights: Ptr, residual: Ptr, M: number, K: number, dim: number, s?: Stream): void {
    if (dim % 8) fail('moe_combine', `dim ${dim} must be a multiple of 8`);
    this.run('moe_combine', M, 256, [p(y), p(slot), p(weights), p(residual), i32(M), i32(K), i32(dim)], s);
  }

  /** Per-token int8 of fp32 rows (quant/act-quant). */
  quantizeF32(x: Ptr, q: Ptr, sx: Ptr, rows: number, dim: number, s?: Stream): void {
    if (dim % 8 || dim > RMS_MAX_DIM) fail('quantize_f32', `dim ${dim} must be a multiple of 8, at most ${RMS_MAX_DIM}`);
    this.run('quantize_f32', rows, 256, [p(x), p(q), p(sx), i32(dim)], s);
  }

  quantizeAct(x: Ptr, q: Ptr, sx: Ptr, rows: number, k: number, s?: Stream): void {
    if (k % 16) fail('quantize_act', `K = ${k} must be a multiple of 16`);
    this.run('quantize_act_per_token', rows, 256, [p(x), p(q), p(sx), i32(rows), i32(k)], s);
  }

  ropeKv(a: {
    qkv: Ptr; bias?: Ptr; cos: Ptr; sin: Ptr; rowSeq: Ptr; seqStart: Ptr; seqPos0: Ptr; seqSlot: Ptr;
    kcache: Ptr; vcache: Ptr; rows: number; nH: number; nKv: number; hd: number; maxSeq: number; interleaved: boolean;
  }, s?: Stream): void {
    const threads = (a.nH + 2 * a.nKv) * (a.hd / 2);  // rotary pairs of q and k, and v values in pairs
    this.run('rope_kv', [a.rows, Math.ceil(threads / 128), 1], 128, [p(a.qkv), p(a.bias), p(a.cos), p(a.sin), p(a.rowSeq), p(a.seqStart), p(a.seqPos0),
      p(a.seqSlot), p(a.kcache), p(a.vcache), i32(a.nH), i32(a.nKv), i32(a.hd), i32(a.maxSeq), i32(a.interleaved ? 1 : 0)], s);
  }

  /** Causal attention of `seqs` sequences of any length (prefill; at most `maxRowsPerSeq` = T·rep query rows per (sequence, KV head)). */
  attention(a: {
    qkv: Ptr; out: Ptr; kcache: Ptr;
    /** fp32 output instead of `out` (the input of a W4A8 o projection). */
    out32?: Ptr; vcache: Ptr; seqStart: Ptr; seqLen: Ptr; seqPos0: Ptr; seqSlot: Ptr;
    seqs: number; maxRowsPerSeq: number; nH: number; nKv: number; hd: number; maxSeq: number; window: number;
  }, s?: Stream): void {
    if (!(ATTN_HEAD_DIMS as readonly number[]).includes(a.hd)) fail('attention', `head size ${a.hd} unsupported on the GPU (64 or 128)`);
    const warps = a.maxRowsPerSeq <= 16 ? 1 : 4;
    const rowsPerBlock = 16 * warps;
    const smem = 4 * ATTN_KEYS_PER_TILE * a.hd * 2;
    this.run(`attention_hd${a.hd}_w${warps}`, [Math.ceil(a.maxRowsPerSeq / rowsPerBlock), a.nKv, a.seqs], 32 * warps, [
      p(a.qkv), p(a.out), p(a.out32), p(a.kcache), p(a.vcache), p(a.seqStart), p(a.seqLen), p(a.seqPos0), p(a.seqSlot),
      i32(a.nH), i32(a.nKv), i32(a.maxSeq), i32(a.window), { f32: Math.LOG2E / Math.sqrt(a.hd) },
    ], s, smem);
  }

  /**
   * One decode step's attention (sequence s = row s, one token each at seqPos0[s]) in one kernel:
   * RoPE of q and k and the K/V append (what ropeKv does in prefill; q stays unrotated in qkv),
   * split-KV over `splits` blocks per (sequence, KV head), merged in the kernel; the output is int8 +
   * scales (`q8`, staged in fp32 `out32`), fp32 (`out32`) or fp16 (`out`). Workspace: wsO/wsMl for
   * B·nH·splits partials, amax B·nKv floats, counters B·nKv + B u32 (zero; left zero).
   */
  attentionDecode(a: {
    qkv: Ptr; out?: Ptr; out32?: Ptr; q8?: { q: Ptr; sx: Ptr }; wsO: Ptr; wsMl: Ptr; amax: Ptr; counters: Ptr;
    kcache: Ptr; vcache: Ptr; bias?: Ptr; cos: Ptr; sin: Ptr; interleaved: boolean; seqPos0: Ptr; seqSlot: Ptr;
    B: number; nH: number; nKv: number; hd: number; maxSeq: number; window: number; splits: number;
  }, s?: Stream): void {
    const where = 'attention (decode)';
    if (!(ATTN_HEAD_DIMS as readonly number[]).includes(a.hd)) fail(where, `head size ${a.hd} unsupported on the GPU (64 or 128)`);
    if (a.nH / a.nKv > ATTN_DECODE_MAX_REP) fail(where, `${a.nH / a.nKv} query heads per KV head exceed ${ATTN_DECODE_MAX_REP}`);
    if (!Number.isInteger(a.splits) || a.splits < 1 || a.splits > ATTN_DECODE_MAX_SPLITS) fail(where, `splits ${a.splits} outside 1..${ATTN_DECODE_MAX_SPLITS}`);
    if (a.q8 && !a.out32) fail(where, 'an int8 output needs the fp32 staging rows');
    if (a.q8 && a.nH * a.hd > ATTN_DECODE_MAX_ROW) fail(where, `an int8 row of ${a.nH * a.hd} values exceeds ${ATTN_DECODE_MAX_ROW}`);
    if (!a.out && !a.out32) fail(where, 'no output');
    const smem = ATTN_DECODE_STAGES * 2 * ATTN_KEYS_PER_TILE * a.hd * 2;
    this.run(`attention_decode_hd${a.hd}`, [a.splits, a.nKv, a.B], 128, [
      p(a.qkv), p(a.out), p(a.out32), p(a.q8?.q), p(a.q8?.sx), p(a.wsO), p(a.wsMl), p(a.amax), p(a.counters), p(a.kcache), p(a.vcache),
      p(a.bias), p(a.cos), p(a.sin), p(a.seqPos0), p(a.seqSlot), i32(a.nH), i32(a.nKv), i32(a.maxSeq), i32(a.window),
      i32(a.interleaved ? 1 : 0), i32(a.splits), { f32: Math.LOG2E / Math.sqrt(a.hd) },
    ], s, smem);
  }

  // ---- sampling --------------------------------------------------------------------------------
  sample(logits: Ptr, rows: number, vocab: number, ids: Ptr, history: Ptr, step: Ptr,
    sampling: { temperature: number; topP: number; seed: number }, s?: Stream): void {
    if (sampling.temperature === 0) {
      this.run('sample_argmax', rows, 256, [p(logits), i32(vocab), p(ids), p(history), p(step), i32(rows)], s);
    } else {
      this.run('sample_topp', rows, 256, [p(logits), i32(vocab), p(ids), p(history), p(step), i32(rows),
        { f32: sampling.temperature }, { f32: sampling.topP }, { u64: BigInt.asUintN(64, BigInt(sampling.seed)) }], s);
    }
  }

  advance(seqPos0: Ptr, step: Ptr, seqs: number, s?: Stream): void {
    this.run('advance_step', Math.ceil(seqs / 256), 256, [p(seqPos0), p(step), i32(seqs)], s);
  }

  // ---- weights ---------------------------------------------------------------------------------
  bf16ToF16(src: Ptr, dst: Ptr, n: number, s?: Stream): void {
    this.run('bf16_to_f16', Math.ceil(n / 256), 256, [p(src), p(dst), { u64: n }], s);
  }

  randomF16(out: Ptr, n: number, seed: number, mean: number, std: number, s?: Stream): void {
    this.run('random_f16', Math.ceil(n / 256), 256, [p(out), { u64: n }, { u64: BigInt(seed) }, { f32: mean }, { f32: std }], s);
  }

  /** RTN int4 of fp16 W[N, K] per group G (G = K: per channel); `bad` gets 1 + a row with a non-finite weight. */
  rtnQuantize(w: Ptr, qpacked: Ptr, scales: Ptr, bad: Ptr, n: number, k: number, g: number, s?: Stream): void {
    if (k % g || g % 2) fail('rtn_quantize', `group ${g} must be even and divide K = ${k}`);
    this.run('rtn_quantize', Math.ceil((n * (k / g)) / 8), 256, [p(w), p(qpacked), p(scales), p(bad), i32(n), i32(k), i32(g)], s);
  }

  integerScales(scales: Ptr, qpacked: Ptr, iscales: Ptr, shift: Ptr, bad: Ptr, n: number, k: number, g: number, s?: Stream): void {
    this.run('integer_scales', Math.ceil(n / 8), 256, [p(scales), p(qpacked), p(iscales), p(shift), p(bad), i32(n), i32(k), i32(g)], s);
  }

  repack(canon: Ptr, out: Ptr, n: number, k: number, layout: 'w4a8' | 'w4a16', s?: Stream): void {
    if (n % 8 || k % 128) fail('repack_w4', `N = ${n} must be a multiple of 8 and K = ${k} of 128`);
    const chunks = (n / 8) * (k / 128) * 32;
    this.run('repack_w4', Math.ceil(chunks / 256), 256, [p(canon), p(out), i32(n), i32(k), i32(layout === 'w4a8' ? 0 : 1)], s);
  }

  /** [N, groups] → [groups, N]: 'i32', 'f16->f32', 'f16', 'i16->i32'. */
  transposeScales(src: Ptr, dst: Ptr, n: number, groups: number, mode: 'i32' | 'f16->f32' | 'f16' | 'i16->i32', s?: Stream): void {
    const m = { 'i32': 0, 'f16->f32': 1, 'f16': 2, 'i16->i32': 3 }[mode];
    this.run('transpose_scales', Math.ceil((n * groups) / 256), 256, [p(src), p(dst), i32(n), i32(groups), i32(m)], s);
  }
}
