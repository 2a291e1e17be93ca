// GPTQ (Frantar et al. 2022) for one linear W[N, K] given its calibration Hessian H = 2·XᵀX/n
// (float64, [K, K]), producing the canonical symmetric int4 QuantizedWeight of rtn.ts: per group
// s = fp16(absmax/7), q = clamp(rint(fp32(w/s)), -7, 7), the spec's rule, applied to the weights
// GPTQ has updated so far (or, with act-order, to the original weights: static groups).
//
// Algorithm (the reference implementation's, float64 throughout):
// - dead inputs (H[k,k] = 0): H[k,k] = 1 and W[:, k] = 0;
// - act-order: columns processed in order of decreasing H[k,k]; groups stay the natural
//   consecutive K/G groups with scales fixed up front from the original W ("static groups"), so
//   the checkpoint needs no g_idx;
// - dampening: H += percdamp·mean(diag H)·I;
// - U upper with H⁻¹ = UᵀU (linalg.ts); columns in blocks of `blockSize`: for column i,
//   q = quant(w_i), err = (w_i − q·s)/U[i,i], later columns of the block get −err·U[i, j] at once,
//   the columns after the block get the block's errors in one lazy update at its end (an fp32
//   matmul, as the reference does it on the GPU, summed into the float64 weights).
// - without act-order a group's scales are computed when its first column is reached, from the
//   weights as updated by every earlier column (the reference reads the block-start values for
//   groups that start inside a block; with G = blockSize = 128 the two are identical).
// - clip (optional): each group's scale is the clip search's (group-clip.ts: the ratio r·absmax
//   minimizing the group's output error dᵀ·H_g·d against the dampened Hessian) instead of absmax/7,
//   on the same weights (the original ones for static groups, the updated ones otherwise): AWQ's
//   clip, applied to GPTQ's groups before their columns are quantized.
import { fail } from '../core/errors.ts';
import { matmulF32 } from '../core/matmul.ts';
import { runTasks } from '../core/matmul-pool.ts';
import { GPTQ_PARAM_WORDS, TASK_GPTQ_COLUMNS } from '../core/pool-tasks.ts';
import { memTrace } from '../core/mem-trace.ts';
import { ptr, releaseScratch, scratchF32, scratchF64 } from '../core/wasm-heap.ts';
import { clipGroupScales, hessianBlock } from './group-clip.ts';
import { inverseCholeskyUpper } from './linalg.ts';
import { resolveGroupSize, scaleFromAbsmax, type QuantizedWeight } from './rtn.ts';

export interface GptqOptions {
  group: number;
  /** Relative dampening of the Hessian's diagonal (default 0.01). */
  percdamp?: number;
  /** Columns per lazy-update block (default 128). */
  blockSize?: number;
  /** Process columns by decreasing Hessian diagonal, with static groups (default false). */
  actOrder?: boolean;
  /** Each group's scale by the output-error clip search of group-clip.ts (default false: absmax/7). */
  clip?: boolean;
  name?: string;
}

export const GPTQ_DEFAULTS = { percdamp: 0.01, blockSize: 128 } as const;

/** The permutation act-order uses: indices by decreasing diag(H) (stable). */
export function actOrderPermutation(h: Float64Array, K: number): Int32Array {
  const idx = Array.from({ length: K }, (_, i) => i);
  idx.sort((a, b) => h[b * K + b]! - h[a * K + a]! || a - b);
  return Int32Array.from(idx);
}

/** What prepareHessian derives from the diagonal alone, by its rules (the GPU solver, src/gpu/gptq/,
 *  uses it; test/gpu/gptq-logic.test.ts checks the two agree). */
export interface DiagonalPlan {
  /** inputs never seen (H[k,k] = 0): their diagonal becomes 1 */
  readonly dead: Uint8Array;
  /** act-order: by decreasing (fixed) diagonal, stable; else the identity */
  readonly perm: Int32Array;
  /** added to every diagonal entry after the dead fix: percdamp·mean(fixed diagonal) */
  readonly damp: number;
}

export function diagonalPlan(diag: Float64Array, opts: { percdamp?: number; actOrder?: boolean; name?: string } = {}): DiagonalPlan {
  const name = opts.name ?? 'gptq', K = diag.length;
  const percdamp = opts.percdamp ?? GPTQ_DEFAULTS.percdamp;
  if (!(percdamp >= 0 && percdamp < 1)) fail(name, `percdamp ${percdamp} outside [0, 1)`);
  const fixed = Float64Array.from(diag), dead = new Uint8Array(K);
  for (let k = 0; k < K; k++) {
    if (!Number.isFinite(fixed[k]!)) fail(name, `non-finite Hessian diagonal at ${k}`);
    if (fixed[k] === 0) { dead[k] = 1; fixed[k] = 1; }
  }
  const idx = Array.from({ length: K }, (_, i) => i);
  if (opts.actOrder) idx.sort((a, b) => fixed[b]! - fixed[a]! || a - b);
  let mean = 0;
  for (let i = 0; i < K; i++) mean += fixed[i]!;
  return { dead, perm: Int32Array.from(idx), damp: (percdamp * mean) / K };
}

/** The Hessian after dead-column fixing, permutation and dampening, and its factor U (shared by the linears of one input). */
export interface PreparedHessian {
  readonly K: number;
  readonly perm: Int32Array;
  /** inputs never seen (H[k,k] = 0 before fixing) */
  readonly dead: Uint8Array;
  /** U upper, H_perm⁻¹ = UᵀU, [K, K] in permuted order */
  readonly u: Float64Array;
  /** the dampened Hessian in natural order (the clip search's objective); absent when prepared with keepHessian: false */
  readonly h?: Float64Array;
}

/** `consume`: hIn is the caller's scratch and becomes the result's `h` (modified in place) instead of
 *  being copied (one K×K float64 less: 970 MB at K = 11008). `keepHessian: false` (with consume):
 *  the result has no `h` and U is written into hIn's array instead (one K×K less again; GPTQ without
 *  --clip never reads H after the factorization). The permuted Hessian is never formed. */
export function prepareHessian(hIn: Float64Array, K: number, opts: { percdamp?: number; actOrder?: boolean; name?: string; consume?: boolean; keepHessian?: boolean } = {}): PreparedHessian {
  const name = opts.name ?? 'gptq';
  if (hIn.length !== K * K) fail(name, `Hessian has ${hIn.length} values, expected ${K}x${K}`);
  const percdamp = opts.percdamp ?? GPTQ_DEFAULTS.percdamp;
  if (!(percdamp >= 0 && percdamp < 1)) fail(name, `percdamp ${percdamp} outside [0, 1)`);
  const keep = opts.keepHessian ?? true;
  if (!keep && !opts.consume) fail(name, 'keepHessian: false needs consume: true (U is written into the Hessian\'s array)');
  const h = opts.consume ? hIn : Float64Array.from(hIn);
  const dead = new Uint8Array(K);
  for (let k = 0; k < K; k++) {
    if (!Number.isFinite(h[k * K + k]!)) fail(name, `non-finite Hessian diagonal at ${k}`);
    if (h[k * K + k] === 0) { dead[k] = 1; h[k * K + k] = 1; }
  }
  const perm = opts.actOrder ? actOrderPermutation(h, K) : Int32Array.from({ length: K }, (_, i) => i);
  let mean = 0;
  for (let i = 0; i < K; i++) mean += h[i * K + i]!;
  const damp = (percdamp * mean) / K;
  for (let i = 0; i < K; i++) h[i * K + i]! += damp;
  memTrace(`${name} hessian`);
  const u = inverseCholeskyUpper(h, K, name, opts.actOrder ? perm : undefined, keep ? undefined : h);
  return keep ? { K, perm, dead, u, h } : { K, perm, dead, u };
}

/** Group scales s[n, g] = fp16(absmax/7) of W over columns of natural groups, read from the permuted
 *  working copy wp [N, K] (wp[n, inv[k]] = W[n, k]). */
function staticScales(wp: Float64Array, inv: Int32Array, N: number, K: number, G: number): Float32Array {
  const groups = K / G;
  const s = new Float32Array(N * groups);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < groups; g++) {
      let m = 0;
      for (let k = g * G; k < (g + 1) * G; k++) m = Math.max(m, Math.abs(Math.fround(wp[n * K + inv[k]!]!)));
      s[n * groups + g] = scaleFromAbsmax(m);
    }
  return s;
}

/** Static group scales by the clip search (group-clip.ts) on the original W against the natural-order Hessian. */
function staticClipScales(w: Float64Array, N: number, K: number, G: number, h: Float64Array): Float32Array {
  const groups = K / G;
  const s = new Float32Array(N * groups);
  for (let g = 0; g < groups; g++) {
    const best = clipGroupScales(w, N, K, g * G, G, hessianBlock(h, K, g * G, G));
    for (let n = 0; n < N; n++) s[n * groups + g] = best[n]!;
  }
  return s;
}

export interface GptqResult {
  qw: QuantizedWeight;
  /** GPTQ's own loss Σ err²·/2 (in Hessian-weighted units), for reports. */
  loss: number;
}

/** Quantize W[N, K] (fp32, row-major) with GPTQ against a prepared Hessian. */
export function gptqQuantize(w: Float32Array, N: number, K: number, ph: PreparedHessian, opts: GptqOptions): GptqResult {
  const name = opts.name ?? 'gptq';
  if (w.length !== N * K) fail(name, `has ${w.length} values, expected ${N}x${K}`);
  if (ph.K !== K) fail(name, `Hessian is for K = ${ph.K}, weight has K = ${K}`);
  const G = resolveGroupSize(opts.group, K, name);
  const B = opts.blockSize ?? GPTQ_DEFAULTS.blockSize;
  if (!(Number.isInteger(B) && B >= 1)) fail(name, `block size ${B} must be a positive integer`);
  const groups = K / G, { perm, u, dead } = ph;
  const actOrder = perm.some((p, i) => p !== i);

  if (opts.clip && !ph.h) fail(name, 'clip search needs the Hessian (prepared with keepHessian: false)');
  // the working state lives in the shared heap: the column loop runs as row-range tasks on the
  // matmul pool's threads (pool-tasks.ts gptqColumns; rows are independent in GPTQ)
  const wp = scratchF64('gptq.wp', N * K); // permuted working copy, dead inputs' weights 0
  for (let n = 0; n < N; n++) for (let i = 0; i < K; i++) wp[n * K + i] = dead[perm[i]!] ? 0 : w[n * K + perm[i]!]!;
  for (let i = 0; i < N * K; i++) if (!Number.isFinite(wp[i]!)) fail(name, `non-finite weight in row ${Math.floor(i / K)}`);
  const inv = new Int32Array(K);
  for (let i = 0; i < K; i++) inv[perm[i]!] = i;
  // static groups' scales from the original weights (the clip search reads them in natural order)
  const natural = () => Float64Array.from({ length: N * K }, (_, j) => wp[j - (j % K) + inv[j % K]!]!);
  const scales = !actOrder ? new Float32Array(N * groups) : opts.clip ? staticClipScales(natural(), N, K, G, ph.h!) : staticScales(wp, inv, N, K, G);
  // the column task reads U only inside the current block: its B×B diagonal block, copied per block
  const uh = scratchF64('gptq.u', B * B);
  const err = scratchF64('gptq.err', N * B), lossRows = scratchF64('gptq.loss', N);
  const sh = scratchF32('gptq.scales', N * groups);
  sh.set(scales);
  const permH = new Int32Array(scratchF32('gptq.perm', K).buffer, scratchF32('gptq.perm', K).byteOffset, K);
  permH.set(perm);
  const qSlot = scratchF32('gptq.q', Math.ceil((N * K) / 4));
  const qp = new Int8Array(qSlot.buffer, qSlot.byteOffset, N * K);
  const params = new Int32Array(scratchF32('gptq.params', GPTQ_PARAM_WORDS).buffer, scratchF32('gptq.params', GPTQ_PARAM_WORDS).byteOffset, GPTQ_PARAM_WORDS);
  params.set([ptr(wp), ptr(uh), ptr(err), ptr(sh), ptr(permH), ptr(qp), ptr(lossRows), K, G, groups, B]);
  const rowsPerTask = Math.max(4, Math.ceil(N / 16));
  const columns = (i1: number, i2: number, c0: number, c1: number) => { if (c1 > c0) runTasks(TASK_GPTQ_COLUMNS, [ptr(params), i1, i2, c0, c1], N, rowsPerTask); };

  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K), cnt = i2 - i1;
    for (let r = 0; r < cnt; r++) uh.set(u.subarray((i1 + r) * K + i1, (i1 + r) * K + i2), r * B);
    let c0 = i1;
    // without act-order a group's scales come from the weights as updated when its first column
    // is reached: the column run stops there, the scales are set, and it resumes
    if (!actOrder)
      for (let i = i1; i < i2; i++) {
        if (i % G !== 0) continue;
        columns(i1, i2, c0, i);
        c0 = i;
        const g = i / G, clipped = opts.clip ? clipGroupScales(wp, N, K, i, G, hessianBlock(ph.h!, K, i, G)) : undefined;
        for (let n = 0; n < N; n++) {
          let m = 0;
          for (let k = i; k < i + G; k++) m = Math.max(m, Math.abs(Math.fround(wp[n * K + k]!)));
          const s = clipped ? clipped[n]! : scaleFromAbsmax(m);
          if (!Number.isFinite(s)) fail(name, `row ${n} group ${g}: absmax ${m} overflows an fp16 scale`);
          scales[n * groups + g] = s;
          sh[n * groups + g] = s;
        }
      }
    columns(i1, i2, c0, i2);
    if (i2 === K) break;
    // lazy update of the columns after the block: W[:, i2:] -= Err · U[i1:i2, i2:], one fp32
    // matmul (as the reference runs it in fp32) added into the float64 weights
    const rest = K - i2;
    const ut = new Float32Array(rest * cnt); // U[i1:i2, i2:]ᵀ
    for (let c = 0; c < cnt; c++) for (let j = 0; j < rest; j++) ut[j * cnt + c] = u[(i1 + c) * K + i2 + j]!;
    const e32 = new Float32Array(N * cnt);
    for (let n = 0; n < N; n++) for (let c = 0; c < cnt; c++) e32[n * cnt + c] = err[n * B + c]!;
    const upd = matmulF32(e32, N, cnt, ut, rest);
    for (let n = 0; n < N; n++) {
      const row = n * K + i2, o = n * rest;
      for (let j = 0; j < rest; j++) wp[row + j]! -= upd[o + j]!;
    }
  }
  let loss = 0;
  for (let n = 0; n < N; n++) loss += lossRows[n]!;

  const q = new Int8Array(N * K);
  for (let n = 0; n < N; n++) for (let i = 0; i < K; i++) q[n * K + perm[i]!] = qp[n * K + i]!;
  // the working copy (N×K float64: 360 MB at 7B's gate/up) and its int8 twin go back to the heap,
  // where the next input's Gram accumulator and factorization need the room
  for (const slot of ['gptq.wp', 'gptq.q', 'gptq.err', 'matmul.y']) releaseScratch(slot);
  return { qw: { outFeatures: N, inFeatures: K, groupSize: G, q, scales }, loss };
}
