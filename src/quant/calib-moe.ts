// The calibration pipeline's mixture-of-experts step (Mixtral; calibrate.ts calls it in place of
// the MLP stages). The layer's rows are routed as the engine routes them (the dense router on
// post_attention_layernorm(x): src/model/moe-routing.ts, the rule of the CPU engine); each expert's gate/up (w1, w3) are quantized from the statistics of the rows routed to
// it, its down (w2) from its own SwiGLU outputs with the quantized w1 / w3, and the layer output
// adds Σ weight · expert output (quantized) to the residual, in expert order. An expert that no
// calibration row reaches has no statistics: it is quantized by RTN, and the layer note lists it.
// Rows are gathered per expert on the host, in pieces of at most the pipeline's chunk rows.
import type { ModelConfig } from '../model/config.ts';
import type { Act, LayerOps, OpsWeight } from './calib-ops.ts';
import type { MoeLayer } from './calib-source.ts';
import type { InputStats } from './hessian.ts';
import type { RowChunk } from './layer-forward.ts';
import { quantizeRtn, type QuantizedWeight } from './rtn.ts';
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
  /** a fresh statistics accumulator for inputs of width K (disposed by the pipeline) */
  collect: (K: number) => InputStats;
  /** quantizes linears from one input's statistics (GPTQ or RTN as the method says) */
  quantizer: (stats: InputStats) => { quantize(w: Float32Array, N: number, name: string): QuantizedWeight; release(): void };
  /** records a quantized linear by its name within the layer, returns its dequantized weight */
  put: (name: string, lw: { w: Float32Array }, qw: QuantizedWeight) => OpsWeight;
}

/** Quantize the layer's experts and add their output to x; returns the calibration rows routed to each expert. */
export function calibrateExperts(cx: MoeStepContext, moe: MoeLayer['moe']): number[] {
  const { ops, config: c } = cx, dim = c.dim, hid = c.hiddenDim, E = moe.experts.length, K = moe.topK;
  const M = cx.x.rows;
  // route every row, keeping the normed rows on the host for the per-expert gathers
  const routed = noRows(E);
  const h = new Float32Array(M * dim);
  const router = ops.weight(moe.router, E, dim), logits = ops.alloc(cx.chunkRows, E);
  for (const ch of cx.chunks) {
    const xn = cx.normed(ch);
    h.set(ops.read(xn).subarray(0, ch.rows * dim), ch.r0 * dim);
    routeRows(ops.read(ops.linear(xn, router, undefined, ops.rows(logits, 0, ch.rows))), ch.rows, E, K, ch.r0, routed);
  }
  ops.freeWeight(router);
  ops.free(logits);

  const moeOut = new Float32Array(M * dim);
  moe.experts.forEach((expert, e) => {
    const { rows, weights } = routed[e]!;
    const w1 = { w: expert.w1 }, w3 = { w: expert.w3 }, w2 = { w: expert.w2 };
    if (rows.length === 0) {
      for (const [field, lw, N, Kin] of [['w1', w1, hid, dim], ['w3', w3, hid, dim], ['w2', w2, dim, hid]] as const)
        ops.freeWeight(cx.put(expertLinearName(e, field), lw, quantizeRtn(lw.w, N, Kin, { group: cx.group, clip: cx.clip, name: expertLinearName(e, field) })));
      return;
    }
    // the expert's rows in pieces of at most chunkRows, gathered from h
    const pieces: { first: number; act: Act }[] = [];
    for (let i = 0; i < rows.length; i += cx.chunkRows) {
      const n = Math.min(cx.chunkRows, rows.length - i), buf = new Float32Array(n * dim);
      for (let j = 0; j < n; j++) buf.set(h.subarray(rows[i + j]! * dim, (rows[i + j]! + 1) * dim), j * dim);
      pieces.push({ first: i, act: ops.fromHost(buf, n, dim) });
    }
    const swiglu = (a: Act, g: OpsWeight, u: OpsWeight) =>
      ops.swiglu(ops.linear(a, g, undefined, ops.rows(cx.gate, 0, a.rows)), ops.linear(a, u, undefined, ops.rows(cx.up, 0, a.rows)));
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
  return routed.map((r) => r.rows.length);
}
