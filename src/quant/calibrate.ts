// The layer-by-layer calibration pipeline (GPTQ's "sequential" scheme): the calibration windows
// run through the model one decoder layer at a time; inside a layer, each group of linears that
// shares an input (q/k/v, then o, then gate/up, then down) is quantized from statistics of its
// actual input, computed with every earlier linear of the model already quantized (dequantized
// fp32 weights), and the quantized layer's output is the next layer's input.
// Per-input-channel scales (AWQ, --smooth) are folded so that the checkpoint stays a plain LLaMA:
// for q/k/v into input_layernorm, for gate/up into post_attention_layernorm (γ' = fp16(γ/s), the
// weights' columns multiplied by the exact γ/γ'), for down into the rows of up_proj (before up is
// quantized; its statistics come from a preview of the fp gate/up outputs on the first
// `previewSamples` windows). o_proj gets no per-channel scales (the v→o fold is not used: with
// grouped-query attention one v channel feeds several o channels).
// A mixture-of-experts layer (Mixtral) replaces the gate/up and down stages by calib-moe.ts: each
// expert from the rows routed to it (any method; the experts' shared input scale folds into
// post_attention_layernorm, the router's columns and every expert's w1 / w3, each expert's down
// scale into its w3 rows; no GPTQ device).
// The weights come from a CalibrationSource (calib-source.ts) one layer at a time, and each layer's
// result is yielded before the next is read: a streaming caller writes it out and keeps nothing.
// Inside a layer every stage runs over chunks of whole windows (at most `chunkRows` rows): each pass
// adds its chunks' rows to the statistics (hessian.ts sums them in the same 512-row chunks whatever the
// split, so the result is the same bit for bit), and only the layer's input/residual x [S·T, dim] and
// the attention output [S·T, nHeads·hd] (fp32, in the heap: at most ≈ 3 GiB with the rest) are kept whole; the MLP's [rows, hidden] intermediates
// exist one chunk at a time (down_proj's input is kept whole for the layer's output only when it is
// small, mlpKeepBytes; otherwise it is recomputed chunk by chunk from the quantized gate/up).
// The forward's arithmetic goes through LayerOps (calib-ops.ts): the CPU's (calib-ops-cpu.ts), or the
// GPTQ device's (its activations stay on the device: the CUDA one's, src/gpu/calib/layer-ops.ts).
import { fail } from '../core/errors.ts';
import { heapFree } from '../core/matmul.ts';
import { collectDropped, dropped } from '../core/gc.ts';
import { memTrace } from '../core/mem-trace.ts';
import { roundToF16 } from '../core/dtype.ts';
import type { Model } from '../model/llama.ts';
import { modelCalibrationSource, type CalibrationSource } from './calib-source.ts';
import { awqClipQuantize, awqSearchScales, type AwqScaleResult, type LinearWeight } from './awq.ts';
import { gptqQuantize, prepareHessian, type PreparedHessian } from './gptq.ts';
import { prepareHessianFromGram, releasePrepared } from './gptq-gram.ts';
import type { DeviceGram, GptqDevice, GptqGroup } from './gptq-device.ts';
import { InputStats } from './hessian.ts';
import type { Act, LayerOps, OpsWeight } from './calib-ops.ts';
import { CpuLayerOps } from './calib-ops-cpu.ts';
import { calibrateExperts, expertInputScales, type MoeStepContext } from './calib-moe.ts';
import { windowChunks, type RowChunk } from './layer-forward.ts';
import { quantizeRtn, resolveGroupSize, type QuantizedWeight } from './rtn.ts';
import { smoothScales } from './smooth.ts';
import { divideColumns, foldIntoRows } from './channel-fold.ts';
import { ROUTER_NAME } from '../model/weights.ts';

export type CalibMethod = 'rtn' | 'gptq' | 'awq';
export const CALIB_METHODS: readonly CalibMethod[] = ['rtn', 'gptq', 'awq'];

export interface MethodOptions {
  method: CalibMethod;
  group: number;
  /** RTN: the spec's per-group clip search (weight space); GPTQ: the output-error clip search of each group's scale (group-clip.ts). */
  clip?: boolean;
  /** SmoothQuant migration strength α, any method. */
  smooth?: number;
  /** GPTQ */
  actOrder?: boolean;
  percdamp?: number;
  blockSize?: number;
  /** GPTQ: AWQ's per-input-channel scale search (awq.ts) first, folded like AWQ's, then GPTQ on the scaled weights. */
  awqScales?: boolean;
  /** Windows used to preview down_proj's input for its per-channel scales (AWQ, --smooth). */
  previewSamples?: number;
  /** Token rows per pipeline chunk (whole windows, at least one; default: the layer ops' chunkRows). */
  chunkRows?: number;
  /** down_proj's input [rows, hidden] fp32 is kept for the layer's output when it takes at most this
   *  many bytes, else recomputed chunk by chunk (default: the layer ops' keepBytes). */
  mlpKeepBytes?: number;
  /** GPTQ: the solver for the heavy parts (Gram matrix, factor, column loop) on a GPU (gptq-device.ts); default: the CPU. */
  gptqDevice?: GptqDevice;
}

/** GPTQ on a device that also sums the Gram matrix (not with folded per-channel scales: they rescale
 *  the CPU's statistics, whose Hessian is then uploaded; AWQ's search needs it on the CPU anyway). */
function gramOnDevice(o: MethodOptions): boolean {
  return o.method === 'gptq' && o.gptqDevice !== undefined && !foldsChannelScales(o);
}

/** A Gram accumulator of width K on the GPTQ device, when gramOnDevice (rows are added chunk by chunk). */
function deviceGram(o: MethodOptions, K: number): DeviceGram | undefined {
  return gramOnDevice(o) ? o.gptqDevice!.gram(K) : undefined;
}

export const PREVIEW_SAMPLES = 32;

export interface LayerNote {
  layer: number;
  seconds: number;
  /** AWQ's chosen α per input group (a mixture of experts: mlp for the experts' shared input,
   *  down the mean over the routed experts) */
  awqAlpha?: { attn: number; mlp: number; down: number };
  /** a mixture of experts: calibration rows routed to each expert (0: it was quantized by RTN) */
  expertRows?: number[];
}

/** One calibrated decoder layer, as calibrationLayers yields it. */
export interface LayerResult {
  layer: number;
  /** the layer's quantized weights, by HF name without `.weight` */
  weights: Map<string, QuantizedWeight>;
  /** its replaced dense tensors (fp16-exact; only when scales are folded): the norm weights and a
   *  Mixtral layer's router, by HF tensor name */
  norms: Map<string, Float32Array>;
  note: LayerNote;
}

export interface CalibrationResult {
  /** quantized weight per linear, by HF name without `.weight` */
  weights: Map<string, QuantizedWeight>;
  /** replaced norm weights (fp16-exact), by HF tensor name */
  norms: Map<string, Float32Array>;
  notes: LayerNote[];
}

/** Does the method (with its options) need calibration data at all? */
export function needsCalibration(o: MethodOptions): boolean {
  return o.method !== 'rtn' || o.smooth !== undefined;
}

/** Does the method search AWQ's per-input-channel scales (awq, or gptq with awqScales)? */
export function searchesAwqScales(o: MethodOptions): boolean {
  return o.method === 'awq' || (o.method === 'gptq' && o.awqScales === true);
}

/** Does the method fold per-input-channel scales into the model (AWQ's or SmoothQuant's)? */
export function foldsChannelScales(o: MethodOptions): boolean {
  return searchesAwqScales(o) || o.smooth !== undefined;
}

const ones = (n: number) => new Float32Array(n).fill(1);

/** x' = x·r folded into a norm weight: γ' = fp16(γ/s), r = γ'/γ (1 where γ or γ' is 0). */
export function foldIntoNorm(gamma: Float32Array, s: Float32Array): Float32Array {
  const r = ones(gamma.length);
  for (let c = 0; c < gamma.length; c++) {
    const g2 = roundToF16(Math.fround(gamma[c]! / s[c]!));
    if (gamma[c] === 0 || g2 === 0 || !Number.isFinite(g2)) continue;
    r[c] = g2 / gamma[c]!;
    gamma[c] = g2;
  }
  return r;
}

/** The input becomes x·r: the weights' columns are divided by r, the statistics scaled (in the heap). */
function applyInputScale(r: Float32Array, linears: LinearWeight[], stats: InputStats): void {
  for (const { w, N } of linears) divideColumns(w, N, r.length, r);
  stats.scale(r);
}

/** The per-input-channel scales s (W·diag(s), x/s) of --smooth and AWQ, in that order, combined.
 *  AWQ's search reads an fp32 Hessian made from the Gram matrix in the heap. `lastUse`: nothing reads
 *  the Gram matrix after the search (down_proj's preview), so the fp32 Hessian is written over it;
 *  otherwise (GPTQ's factor and AWQ's clip blocks come from the scaled Gram matrix) it is a copy. */
function channelScales(o: MethodOptions, linears: LinearWeight[], stats: InputStats, lastUse: boolean, fold: (s: Float32Array) => Float32Array): number | undefined {
  if (o.smooth !== undefined) applyInputScale(fold(smoothScales(stats.absMax, linears, stats.K, o.smooth)), linears, stats);
  if (!searchesAwqScales(o)) return undefined;
  const h = stats.hessianF32(lastUse);
  let found: AwqScaleResult;
  try {
    found = awqSearchScales(linears, stats.K, h, stats.absMean(), o.group);
  } finally {
    heapFree(h);
  }
  applyInputScale(fold(found.scales), linears, stats);
  return found.alpha;
}

/** Quantizes the linears of one input group from that input's statistics. */
class GroupQuantizer {
  private prepared: PreparedHessian | undefined;
  private onDevice: GptqGroup | undefined;
  private readonly K: number;
  /** dropped once GPTQ has its factor (the Gram is K×K float64: 970 MB at K = 11008) */
  private stats: InputStats | undefined;
  /** `deviceGram`: the input's Gram matrix on the GPTQ device (deviceGram), else the device gets the CPU's Hessian */
  constructor(private readonly o: MethodOptions, stats: InputStats, private readonly deviceGram?: DeviceGram) { this.K = stats.K; this.stats = stats; }

  /** AWQ's clip objective: the Hessian's diagonal blocks, fp32, computed once per input */
  private hBlocks: Float32Array | undefined;

  quantize(w: Float32Array, N: number, name: string, isQueryOrKey = false): QuantizedWeight {
    const K = this.K, o = this.o;
    if (o.method === 'gptq' && o.gptqDevice) {
      const opts = { actOrder: o.actOrder ?? false, name, ...(o.percdamp !== undefined ? { percdamp: o.percdamp } : {}) };
      this.onDevice ??= o.gptqDevice.beginGroup(this.deviceGram ? { gram: this.deviceGram } : { hessian: this.stats!.hessian(true) }, K, opts);
      this.stats = undefined;
      return this.onDevice.quantize(w, N, { group: o.group, actOrder: o.actOrder ?? false, clip: o.clip ?? false, name, ...(o.blockSize !== undefined ? { blockSize: o.blockSize } : {}) }).qw;
    }
    if (o.method === 'gptq') {
      if (!this.prepared) {
        // without --clip the factorization reads the Gram accumulator in the heap (no K×K copy in
        // JS; U in the heap); --clip keeps H: the Gram matrix becomes it in place
        const st = this.stats!, po = { actOrder: o.actOrder ?? false, name, ...(o.percdamp !== undefined ? { percdamp: o.percdamp } : {}) };
        this.stats = undefined;
        this.prepared = o.clip ? prepareHessian(st.hessian(true), K, { ...po, consume: true }) : prepareHessianFromGram(st.takeGram(), st.rows, K, po);
      }
      return gptqQuantize(w, N, K, this.prepared, { group: o.group, actOrder: o.actOrder ?? false, clip: o.clip ?? false, name, ...(o.blockSize !== undefined ? { blockSize: o.blockSize } : {}) }).qw;
    }
    // AWQ skips the clip search for q/k (their output error does not measure the attention scores')
    if (o.method === 'awq' && !isQueryOrKey) {
      this.hBlocks ??= this.stats!.hessianBlocksF32(resolveGroupSize(o.group, K, name));
      return awqClipQuantize(w, N, K, this.hBlocks, o.group, name);
    }
    return quantizeRtn(w, N, K, { group: o.group, clip: o.clip ?? false, name });
  }

  /** Drops the statistics, Hessian and factor once the input's linears are done (K×K float64 each). */
  release(): void {
    if (this.prepared || this.stats?.withGram) dropped(8 * this.K * this.K);
    if (this.prepared) releasePrepared(this.prepared);
    this.prepared = this.hBlocks = this.stats = undefined;
  }
}

/**
 * Quantize every decoder linear of a dense model with `o.method`, from the calibration windows
 * (each starting at position 0, all of one length). The model is not modified.
 */
export function calibrateModel(model: Model, windows: readonly (readonly number[])[], o: MethodOptions,
                               onLayer?: (note: LayerNote, total: number) => void): CalibrationResult {
  const result: CalibrationResult = { weights: new Map(), norms: new Map(), notes: [] };
  for (const step of calibrationLayers(modelCalibrationSource(model), windows, o)) {
    for (const [k, v] of step.weights) result.weights.set(k, v);
    for (const [k, v] of step.norms) result.norms.set(k, v);
    result.notes.push(step.note);
    onLayer?.(step.note, model.config.nLayers);
  }
  return result;
}

/**
 * The pipeline, one decoder layer per step: layer l's weights are read from `source` when step l
 * starts and the step yields its quantized weights; only the activations (the next layer's input)
 * are carried over. Stopping early (return / throw in the consumer) frees the heap scratch.
 */
export function* calibrationLayers(source: CalibrationSource, windows: readonly (readonly number[])[], o: MethodOptions): Generator<LayerResult, void, undefined> {
  const c = source.config;
  if (c.arch === 'mixtral' && o.gptqDevice) fail('calibration', 'mixture-of-experts models calibrate on the CPU (--calib-device cpu)');
  if (windows.length === 0) fail('calibration', 'no calibration windows');
  const T = windows[0]!.length, S = windows.length, M = S * T, dim = c.dim, eps = c.normEps;
  if (windows.some((x) => x.length !== T)) fail('calibration', 'calibration windows differ in length');
  if (T > c.maxSeq) fail('calibration', `windows of ${T} positions exceed the model's context of ${c.maxSeq}`);
  const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim, hid = c.hiddenDim;
  for (const K of [dim, qDim, hid]) resolveGroupSize(o.group, K, 'calibration');
  const gram = o.method !== 'rtn' && !gramOnDevice(o);
  const folds = foldsChannelScales(o), channels = folds; // per-channel magnitudes: AWQ, SmoothQuant
  for (const ids of windows) for (const id of ids)
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) fail('calibration', `token id ${id} outside the vocabulary of ${c.vocabSize}`);

  const ops: LayerOps = o.gptqDevice?.layerOps?.(c) ?? new CpuLayerOps(c); // where the forward runs
  const live: InputStats[] = []; // statistics being collected (their heap accumulators), disposed on any error
  const collect = (K: number, withGram: boolean, withChannels: boolean) => { const st = new InputStats(K, withGram, withChannels); live.push(st); return st; };
  const quantizers: GroupQuantizer[] = []; // their factors in the heap: released after use, and on any error
  const quantizer = (st: InputStats, dg?: DeviceGram) => { const q = new GroupQuantizer(o, st, dg); quantizers.push(q); return q; };
  let xBytes = 0;
  try {
    let x: Act; // the layer input, then (in place) the residual and the layer output
    {
      const host = new Float32Array(M * dim), embedding = source.embedding(); // dropped once the first layer's inputs are copied
      windows.forEach((ids, s) => ids.forEach((id, t) => host.set(embedding.subarray(id * dim, (id + 1) * dim), (s * T + t) * dim)));
      dropped(embedding.byteLength); // a streaming source's fresh copy (524 MB fp32 at 7B), collected before layer 0 is read
      x = ops.fromHost(host, M, dim);
      xBytes = host.byteLength;
    }
    const chunks = windowChunks(S, T, o.chunkRows ?? ops.chunkRows);
    const previewChunks = windowChunks(Math.min(S, o.previewSamples ?? PREVIEW_SAMPLES), T, o.chunkRows ?? ops.chunkRows);
    const R = Math.max(...chunks.map((ch) => ch.rows));
    const rowsOf = (a: Act, ch: RowChunk) => ops.rows(a, ch.r0, ch.r1);
    const firstRows = (a: Act, ch: RowChunk) => ops.rows(a, 0, ch.rows); // a chunk buffer's part for this chunk

    // per-chunk buffers (on the CPU in the heap, where the pool's threads work on them in place)
    const xn = ops.alloc(R, dim), qb = ops.alloc(R, qDim), kb = ops.alloc(R, kvDim), vb = ops.alloc(R, kvDim);
    const gb = ops.alloc(R, hid), ub = ops.alloc(R, hid), ob = ops.alloc(R, dim);
    const normed = (gamma: Float32Array, ch: RowChunk) => ops.rmsNorm(rowsOf(x, ch), gamma, eps, firstRows(xn, ch));
    /** SwiGLU of the chunk's MLP input (normed x with `gamma`) through gate/up weights; into gb. */
    const mlp = (gamma: Float32Array, ch: RowChunk, wgate: OpsWeight, wup: OpsWeight) => {
      const xc = normed(gamma, ch);
      return ops.swiglu(ops.linear(xc, wgate, undefined, firstRows(gb, ch)), ops.linear(xc, wup, undefined, firstRows(ub, ch)));
    };

    for (let l = 0; l < c.nLayers; l++) {
      const started = performance.now();
      collectDropped(); // the previous layer's arrays, before this one's are read
      // each stage reads its weights when it starts (a streaming source reads them then)
      const L = source.layer(l), pre = `model.layers.${l}.`;
      const wq = { w: L.wq, N: qDim }, wk = { w: L.wk, N: kvDim }, wv = { w: L.wv, N: kvDim };
      memTrace(`L${l} q/k/v weights read`);
      const ga = L.attnNorm, gf = L.ffnNorm;
      const note: LayerNote = { layer: l, seconds: 0 };
      const step: LayerResult = { layer: l, weights: new Map(), norms: new Map(), note };
      /** records a quantized linear, drops its fp32 source weight, returns its dequantized weights for the forward */
      const put = (name: string, lw: { w: Float32Array }, qw: QuantizedWeight): OpsWeight => {
        step.weights.set(`${pre}${name}`, qw);
        dropped(lw.w.byteLength);
        lw.w = new Float32Array(0);
        return ops.dequantized(qw);
      };
      const dequantized = (name: string) => ops.dequantized(step.weights.get(`${pre}${name}`)!);

      // q/k/v: input = input_layernorm(x)
      const sa = collect(dim, gram, channels), devA = deviceGram(o, dim);
      for (const ch of chunks) ops.accumulate(normed(ga, ch), sa, devA);
      const alphaA = channelScales(o, [wq, wk, wv], sa, false, (s) => foldIntoNorm(ga, s));
      const qa = quantizer(sa, devA);
      const dq = put('self_attn.q_proj', wq, qa.quantize(wq.w, qDim, `${pre}self_attn.q_proj`, true));
      const dk = put('self_attn.k_proj', wk, qa.quantize(wk.w, kvDim, `${pre}self_attn.k_proj`, true));
      memTrace(`L${l} qkv stats`);
      const dv = put('self_attn.v_proj', wv, qa.quantize(wv.w, kvDim, `${pre}self_attn.v_proj`));
      qa.release();
      collectDropped();

      // o: input = attention output with the quantized q/k/v (input_layernorm as folded)
      // in the heap, so that it is given back the moment o's output is added (a dropped JS array of
      // 1 GiB at 7B and 128 × 512 windows lingered until a collection that a dead register could defer)
      const xb = ops.alloc(M, qDim);
      const sb = collect(qDim, gram, false), devB = deviceGram(o, qDim);
      for (const ch of chunks) {
        const xa = normed(ga, ch);
        const out = ops.attention(ops.linear(xa, dq, L.bq, firstRows(qb, ch)), ops.linear(xa, dk, L.bk, firstRows(kb, ch)),
                                  ops.linear(xa, dv, L.bv, firstRows(vb, ch)), ch.s1 - ch.s0, T, rowsOf(xb, ch));
        ops.accumulate(out, sb, devB);
      }
      for (const w of [dq, dk, dv]) ops.freeWeight(w);
      memTrace(`L${l} qkv quantized+attn`);
      const qo = quantizer(sb, devB), wo = { w: L.wo, N: dim };
      const dO = put('self_attn.o_proj', wo, qo.quantize(wo.w, dim, `${pre}self_attn.o_proj`));
      qo.release();
      memTrace(`L${l} o quantized`);

      let alphaC: number | undefined, alphaD: number | undefined; // AWQ's α for gate/up and down (dense MLP)
      if ('moe' in L) {
        // a mixture of experts (calib-moe.ts): x2 = x + o(attention) in place, then the experts
        for (const ch of chunks) ops.addInto(rowsOf(x, ch), ops.linear(rowsOf(xb, ch), dO, undefined, firstRows(ob, ch)));
        ops.freeWeight(dO);
        ops.free(xb);
        collectDropped();
        const cx: MoeStepContext = {
          ops, config: c, group: o.group, clip: o.clip ?? false, x, normed: (ch) => normed(gf, ch), chunks, chunkRows: R,
          gate: gb, up: ub, out: ob, collect: (K, what = {}) => collect(K, what.gram ?? gram, what.channels ?? false),
          quantizer: (st) => quantizer(st), put,
          ...(folds ? { scaleDown: (st: InputStats, w2: LinearWeight, w3: LinearWeight) => channelScales(o, [w2], st, true, foldIntoRows(w3.w, hid, dim)) } : {}),
        };
        if (folds) {
          const scaled = expertInputScales(cx, L.moe, { ...(o.smooth !== undefined ? { smooth: o.smooth } : {}), awq: searchesAwqScales(o), fold: (s) => foldIntoNorm(gf, s) });
          cx.inputScale = scaled.r;
          alphaC = scaled.alpha;
        }
        const experts = calibrateExperts(cx, L.moe);
        note.expertRows = experts.rows;
        const routedAlpha = experts.downAlpha?.filter((a) => !Number.isNaN(a)) ?? [];
        if (routedAlpha.length) alphaD = routedAlpha.reduce((a, b) => a + b, 0) / routedAlpha.length;
      } else {
        // gate/up: input = post_attention_layernorm(x2), x2 = x + o(attention) in place in x
        const sc = collect(dim, gram, channels), devC = deviceGram(o, dim);
        for (const ch of chunks) {
          ops.addInto(rowsOf(x, ch), ops.linear(rowsOf(xb, ch), dO, undefined, firstRows(ob, ch)));
          ops.accumulate(normed(gf, ch), sc, devC);
        }
        ops.freeWeight(dO);
        ops.free(xb);
        collectDropped();
        const wg = { w: L.w1, N: hid }, wu = { w: L.w3, N: hid };
        let down: LinearWeight | undefined; // read here only if the fold needs it early
        const wdOf = () => (down ??= { w: L.w2, N: dim });
        alphaC = channelScales(o, [wg, wu], sc, false, (s) => foldIntoNorm(gf, s));
        if (folds) {
          // down's per-channel scales, folded into up's rows before up is quantized: from a preview
          // of its input with the (scaled, not yet quantized) fp gate/up on the first windows
          const sp = collect(hid, searchesAwqScales(o), true);
          const pg = ops.weight(wg.w, hid, dim), pu = ops.weight(wu.w, hid, dim);
          for (const ch of previewChunks) ops.accumulate(mlp(gf, ch, pg, pu), sp, undefined);
          ops.freeWeight(pg);
          ops.freeWeight(pu);
          alphaD = channelScales(o, [wdOf()], sp, true, foldIntoRows(wu.w, hid, dim));
          sp.dispose();
        }
        const qc = quantizer(sc, devC);
        let dg = put('mlp.gate_proj', wg, qc.quantize(wg.w, hid, `${pre}mlp.gate_proj`));
        let du = put('mlp.up_proj', wu, qc.quantize(wu.w, hid, `${pre}mlp.up_proj`));
        qc.release();
        collectDropped();
        memTrace(`L${l} gate/up quantized`);

        // down: input = silu(gate(xc))·up(xc) with the quantized gate/up; kept for the output if it is one
        // chunk (in gb) or small enough, else recomputed there
        const sd = collect(hid, gram, false), devD = deviceGram(o, hid);
        const again = chunks.length > 1 && M * hid * 4 > (o.mlpKeepBytes ?? ops.keepBytes);
        const kept = chunks.length > 1 && !again ? ops.alloc(M, hid, 'js') : undefined;
        for (const ch of chunks) {
          const xd = mlp(gf, ch, dg, du);
          ops.accumulate(xd, sd, devD);
          if (kept) ops.copy(rowsOf(kept, ch), xd);
        }
        ops.freeWeight(dg); // re-made for the output pass if it needs them: the factorization's memory comes first
        ops.freeWeight(du);
        memTrace(`L${l} down stats`);
        const qd = quantizer(sd, devD), wd = wdOf();
        const dd = put('mlp.down_proj', wd, qd.quantize(wd.w, dim, `${pre}mlp.down_proj`));
        qd.release();
        collectDropped();
        memTrace(`L${l} down quantized`);
        if (again) { dg = dequantized('mlp.gate_proj'); du = dequantized('mlp.up_proj'); }
        for (const ch of chunks) {
          const xd = again ? mlp(gf, ch, dg, du) : kept ? rowsOf(kept, ch) : firstRows(gb, ch);
          ops.addInto(rowsOf(x, ch), ops.linear(xd, dd, undefined, firstRows(ob, ch)));
        }
        ops.freeWeight(dd);
        if (again) { ops.freeWeight(dg); ops.freeWeight(du); }
        if (kept) ops.free(kept);
      }
      live.splice(0).forEach((st) => st.dispose());
      quantizers.splice(0);
      memTrace(`L${l} done`);

      if (folds) {
        step.norms.set(`${pre}input_layernorm.weight`, ga);
        step.norms.set(`${pre}post_attention_layernorm.weight`, gf);
        if ('moe' in L) step.norms.set(`${pre}${ROUTER_NAME}.weight`, L.moe.router);  // its columns took the experts' input scale
      }
      if (alphaA !== undefined) note.awqAlpha = { attn: alphaA, mlp: alphaC ?? 0, down: alphaD ?? 0 };
      note.seconds = (performance.now() - started) / 1000;
      yield step;
    }
  } finally {
    dropped(xBytes); // collected by the caller once this generator is done (gc.ts collectDropped)
    ops.releaseAll();
    live.splice(0).forEach((st) => st.dispose());
    quantizers.splice(0).forEach((q) => q.release());
  }
}
