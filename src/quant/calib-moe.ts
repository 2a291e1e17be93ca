// The calibration pipeline's mixture-of-experts step (Mixtral; calibrate.ts calls it in place of
// the MLP stages). The layer's rows are routed as the engine routes them (the dense router on
// post_attention_layernorm(x): src/model/moe-routing.ts, the rule of the CPU engine); each expert's
// gate/up (w1, w3) are quantized from the statistics of the rows routed to it, its down (w2) from
// its own SwiGLU outputs with the quantized w1 / w3, and the layer output
// adds Σ weight · expert output (quantized) to the residual, in expert order. An expert that no
// calibration row reaches has no statistics: it is quantized by RTN, and the layer note lists it.
// Rows are gathered per expert on the host, in pieces of at most the pipeline's chunk rows.
// Per-channel scales (AWQ, SmoothQuant) as AutoAWQ applies them to Mixtral: the experts' shared input
// (post_attention_layernorm) gets one scale s over dim, folded into the norm, into the router's
// columns (rounded to fp16, as the checkpoint keeps it: routing sees the same input) and into every
// expert's w1 / w3 columns; SmoothQuant takes max |x| over all rows and max |W| over every expert and
// the router, AWQ the α of least output error summed over the experts, each on its routed rows
// (expertInputScales). Each expert's down (w2) gets its own scales from its SwiGLU outputs, folded
// into its w3 rows (MoeStepContext.scaleDown).
import { roundToF16 } from '../core/dtype.ts';
import { heapFree } from '../core/matmul.ts';
import type { ModelConfig } from '../model/config.ts';
import type { Act, LayerOps, OpsWeight } from './calib-ops.ts';
import type { MoeLayer } from './calib-source.ts';
import type { InputStats } from './hessian.ts';
import type { RowChunk } from './layer-forward.ts';
import { quantizeRtn, type QuantizedWeight } from './rtn.ts';
import { awqBest, awqCandidates, awqLosses, type LinearWeight } from './awq.ts';
import { smoothScales } from './smooth.ts';
import { divideColumns } from './channel-fold.ts';
import { noRows, routeRows } from '../model/moe-routing.ts';
import { expertLinearName } from '../model/weights.ts';

/** What the step needs from the pipeline's layer (calibrate.ts's closures and buffers). */
export interface MoeStepContext {
  ops: LayerOps;
  config: ModelConfig;
  group: number;
  clip: boolean;
  /** the residual stream after attention [M, dim]; the step adds the experts' output into it */
  x: Act;
  /** post_attention_layernorm rows of x for a chunk */
  normed: (ch: RowChunk) => Act;
  chunks: readonly RowChunk[];
  /** the largest chunk's rows: the size of the buffers below */
  chunkRows: number;
  /** buffers of chunkRows rows: gate [R, hidden], up [R, hidden], out [R, dim] */
  gate: Act;
  up: Act;
  out: Act;
  /** a fresh statistics accumulator for inputs of width K (disposed by the pipeline): with the Gram
   *  matrix as the method needs it (or as `gram` says) and per-channel |x| when `channels` */
  collect: (K: number, what?: { gram?: boolean; channels?: boolean }) => InputStats;
  /** quantizes linears from one input's statistics (GPTQ or RTN as the method says) */
  quantizer: (stats: InputStats) => { quantize(w: Float32Array, N: number, name: string): QuantizedWeight; release(): void };
  /** records a quantized linear by its name within the layer, returns its dequantized weight */
  put: (name: string, lw: { w: Float32Array }, qw: QuantizedWeight) => OpsWeight;
  /** SmoothQuant's factor r of the experts' shared input (expertInputScales): each expert's w1 / w3
   *  columns are divided by it when read */
  inputScale?: Float32Array;
  /** AWQ / SmoothQuant: an expert's down scales from the statistics of its SwiGLU outputs (fp w1 / w3),
   *  folded into its w3 rows; returns AWQ's α (undefined: no AWQ search). Absent: no per-channel scales. */
  scaleDown?: (stats: InputStats, w2: LinearWeight, w3: LinearWeight) => number | undefined;
}

/** The method's scales of the experts' shared input (see the header). */
export interface ExpertInputScaling {
  /** SmoothQuant's α, when --smooth */
  smooth?: number;
  /** search AWQ's scale (after SmoothQuant's, as for a dense layer) */
  awq: boolean;
  /** the norm fold: γ' = fp16(γ/s) in place; returns r = γ'/γ, the factor the input is multiplied by */
  fold: (s: Float32Array) => Float32Array;
}

/** Route the layer's rows: the normed rows (kept on the host) and each expert's rows and weights. */
function routeLayer(cx: MoeStepContext, moe: MoeLayer['moe']): { h: Float32Array; routed: ReturnType<typeof noRows> } {
  const { ops } = cx, dim = cx.config.dim, E = moe.experts.length, M = cx.x.rows;
  const routed = noRows(E);
  const h = new Float32Array(M * dim);
  const router = ops.weight(moe.router, E, dim), logits = ops.alloc(cx.chunkRows, E);
  for (const ch of cx.chunks) {
    const xn = cx.normed(ch);
    h.set(ops.read(xn).subarray(0, ch.rows * dim), ch.r0 * dim);
    routeRows(ops.read(ops.linear(xn, router, undefined, ops.rows(logits, 0, ch.rows))), ch.rows, E, moe.topK, ch.r0, routed);
  }
  ops.freeWeight(router);
  ops.free(logits);
  return { h, routed };
}

/** Expert e's rows of h in pieces of at most chunkRows (on the ops' side), from the first. */
function expertPieces(cx: MoeStepContext, h: Float32Array, rows: readonly number[]): { first: number; act: Act }[] {
  const dim = cx.config.dim, pieces: { first: number; act: Act }[] = [];
  for (let i = 0; i < rows.length; i += cx.chunkRows) {
    const n = Math.min(cx.chunkRows, rows.length - i), buf = new Float32Array(n * dim);
    for (let j = 0; j < n; j++) buf.set(h.subarray(rows[i + j]! * dim, (rows[i + j]! + 1) * dim), j * dim);
    pieces.push({ first: i, act: cx.ops.fromHost(buf, n, dim) });
  }
  return pieces;
}

/**
 * The scales of the experts' shared input (see the header): SmoothQuant's, then AWQ's, each folded
 * into the norm and the router's columns here. Returns the factor r the input is multiplied by in
 * all, for calibrateExperts to divide each expert's w1 / w3 columns by as it reads them
 * (cx.inputScale: a source hands out a fresh copy of an expert's weights on every read, and all of a
 * layer's experts at once would not fit), and AWQ's α (undefined without AWQ).
 */
export function expertInputScales(cx: MoeStepContext, moe: MoeLayer['moe'], how: ExpertInputScaling): { r: Float32Array; alpha?: number } {
  const dim = cx.config.dim, hid = cx.config.hiddenDim, E = moe.experts.length;
  const r = new Float32Array(dim).fill(1);
  const gateUp = (e: number): LinearWeight[] => {  // expert e's w1 / w3 as scaled so far (read once per call)
    const x = moe.experts[e]!, ws = [x.w1, x.w3];
    for (const w of ws) divideColumns(w, hid, dim, r);
    return ws.map((w) => ({ w, N: hid }));
  };
  const fold = (s: Float32Array) => {  // x' = x·f: the router's columns are divided by f now, the experts' by r later
    const f = how.fold(s);
    for (let e = 0; e < E; e++) for (let k = 0; k < dim; k++) moe.router[e * dim + k] = roundToF16(moe.router[e * dim + k]! / f[k]!);
    for (let k = 0; k < dim; k++) r[k] = r[k]! * f[k]!;
  };
  if (how.smooth !== undefined) {
    const all = cx.collect(dim, { gram: false, channels: true });  // every row's max |x|
    for (const ch of cx.chunks) cx.ops.accumulate(cx.normed(ch), all, undefined);
    const wmax = new Float32Array(dim);  // max |W| per input channel over every consumer, one expert read at a time
    const columnMax = (w: Float32Array, N: number) => { for (let n = 0; n < N; n++) for (let k = 0; k < dim; k++) wmax[k] = Math.max(wmax[k]!, Math.abs(w[n * dim + k]!)); };
    for (const x of moe.experts) { columnMax(x.w1, hid); columnMax(x.w3, hid); }  // (nothing folded yet: read as they are)
    columnMax(moe.router, E);
    fold(smoothScales(all.absMax, [{ w: wmax, N: 1 }], dim, how.smooth));
  }
  if (!how.awq) return { r };
  // AWQ: the candidates from every row's mean |x| (after SmoothQuant's fold), each expert's loss on its routed rows
  const { h, routed } = routeLayer(cx, moe);
  const absMean = new Float64Array(dim);
  for (let i = 0; i < cx.x.rows; i++) for (let k = 0; k < dim; k++) absMean[k]! += Math.abs(h[i * dim + k]!) / cx.x.rows;
  const candidates = awqCandidates(absMean, dim);
  const total = new Array<number>(candidates.length).fill(0);
  for (let e = 0; e < E; e++) {
    const rows = routed[e]!.rows;
    if (rows.length === 0) continue;
    const st = cx.collect(dim, { gram: true });
    const pieces = expertPieces(cx, h, rows);
    for (const p of pieces) cx.ops.accumulate(p.act, st, undefined);
    for (const p of pieces) cx.ops.free(p.act);
    const hf = st.hessianF32(true);
    try {
      awqLosses(gateUp(e), dim, hf, candidates, cx.group).forEach((l, i) => { total[i]! += l; });
    } finally {
      heapFree(hf);
    }
  }
  const best = awqBest(candidates, total);
  fold(best.scales);
  return { r, alpha: best.alpha };
}

/**
 * Quantize the layer's experts and add their output to x; returns the calibration rows routed to
 * each expert and (with cx.scaleDown and AWQ) each expert's down α (NaN for an unrouted one).
 */
export function calibrateExperts(cx: MoeStepContext, moe: MoeLayer['moe']): { rows: number[]; downAlpha?: number[] } {
  const { ops, config: c } = cx, dim = c.dim, hid = c.hiddenDim;
  const M = cx.x.rows;
  // route every row, keeping the normed rows on the host for the per-expert gathers
  const { h, routed } = routeLayer(cx, moe);
  const downAlpha: number[] = [];
  const moeOut = new Float32Array(M * dim);
  moe.experts.forEach((expert, e) => {
    const { rows, weights } = routed[e]!;
    const w1 = { w: expert.w1 }, w3 = { w: expert.w3 }, w2 = { w: expert.w2 };  // (each read once: a source copies on every read)
    if (cx.inputScale) for (const w of [w1.w, w3.w]) divideColumns(w, hid, dim, cx.inputScale);
    if (rows.length === 0) {
      downAlpha.push(NaN);
      for (const [field, lw, N, Kin] of [['w1', w1, hid, dim], ['w3', w3, hid, dim], ['w2', w2, dim, hid]] as const)
        ops.freeWeight(cx.put(expertLinearName(e, field), lw, quantizeRtn(lw.w, N, Kin, { group: cx.group, clip: cx.clip, name: expertLinearName(e, field) })));
      return;
    }
    const pieces = expertPieces(cx, h, rows);
    const swiglu = (a: Act, g: OpsWeight, u: OpsWeight) =>
      ops.swiglu(ops.linear(a, g, undefined, ops.rows(cx.gate, 0, a.rows)), ops.linear(a, u, undefined, ops.rows(cx.up, 0, a.rows)));
    if (cx.scaleDown) {
      // down's per-channel scales, folded into w3's rows before w3 is quantized: from the expert's
      // SwiGLU outputs with its (scaled, not yet quantized) fp w1 / w3
      const sp = cx.collect(hid, { gram: true, channels: true });
      const pg = ops.weight(w1.w, hid, dim), pu = ops.weight(w3.w, hid, dim);
      for (const p of pieces) ops.accumulate(swiglu(p.act, pg, pu), sp, undefined);
      ops.freeWeight(pg);
      ops.freeWeight(pu);
      downAlpha.push(cx.scaleDown(sp, { w: w2.w, N: dim }, { w: w3.w, N: hid }) ?? NaN);
    }
    // gate / up from the routed rows
    const su = cx.collect(dim);
    for (const p of pieces) ops.accumulate(p.act, su, undefined);
    const qu = cx.quantizer(su);
    const dg = cx.put(expertLinearName(e, 'w1'), w1, qu.quantize(w1.w, hid, expertLinearName(e, 'w1')));
    const du = cx.put(expertLinearName(e, 'w3'), w3, qu.quantize(w3.w, hid, expertLinearName(e, 'w3')));
    qu.release();
    // down from the expert's SwiGLU outputs with the quantized gate / up
    const sd = cx.collect(hid);
    for (const p of pieces) ops.accumulate(swiglu(p.act, dg, du), sd, undefined);
    const qd = cx.quantizer(sd);
    const dd = cx.put(expertLinearName(e, 'w2'), w2, qd.quantize(w2.w, dim, expertLinearName(e, 'w2')));
    qd.release();
    // the expert's weighted output, added row by row in expert order
    for (const p of pieces) {
      const y = ops.read(ops.linear(swiglu(p.act, dg, du), dd, undefined, ops.rows(cx.out, 0, p.act.rows)));
      for (let j = 0; j < p.act.rows; j++) {
        const r = rows[p.first + j]!, wgt = weights[p.first + j]!;
        for (let i = 0; i < dim; i++) moeOut[r * dim + i]! += wgt * y[j * dim + i]!;
      }
    }
    for (const w of [dg, du, dd]) ops.freeWeight(w);
    for (const p of pieces) ops.free(p.act);
  });
  ops.addInto(cx.x, ops.fromHost(moeOut, M, dim));
  return { rows: routed.map((r) => r.rows.length), ...(cx.scaleDown ? { downAlpha } : {}) };
}
