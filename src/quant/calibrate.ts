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
// The weights come from a CalibrationSource (calib-source.ts) one layer at a time, and each layer's
// result is yielded before the next is read: a streaming caller writes it out and keeps nothing.
import { fail } from '../core/errors.ts';
import { heapF32, heapFree } from '../core/matmul.ts';
import { roundToF16 } from '../core/dtype.ts';
import type { Model } from '../model/llama.ts';
import { modelCalibrationSource, type CalibrationSource } from './calib-source.ts';
import { awqClipQuantize, awqSearchScales, type LinearWeight } from './awq.ts';
import { gptqQuantize, prepareHessian, type PreparedHessian } from './gptq.ts';
import type { DeviceGram, GptqDevice, GptqGroup } from './gptq-device.ts';
import { InputStats } from './hessian.ts';
import { addRows, attentionRows, calibRope, linearRows, rmsNormRows, swigluRows } from './layer-forward.ts';
import { dequantize, quantizeRtn, resolveGroupSize, type QuantizedWeight } from './rtn.ts';
import { smoothScales } from './smooth.ts';

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
  /** GPTQ: the solver for the heavy parts (Gram matrix, factor, column loop) on a GPU (gptq-device.ts); default: the CPU. */
  gptqDevice?: GptqDevice;
}

/** GPTQ on a device that also sums the Gram matrix (not with folded per-channel scales: they rescale
 *  the CPU's statistics, whose Hessian is then uploaded; AWQ's search needs it on the CPU anyway). */
function gramOnDevice(o: MethodOptions): boolean {
  return o.method === 'gptq' && o.gptqDevice !== undefined && !foldsChannelScales(o);
}

/** The Gram matrix of an input's rows x [rows, K] on the GPTQ device, when gramOnDevice. */
function deviceGramOf(o: MethodOptions, x: Float32Array, rows: number, K: number): DeviceGram | undefined {
  if (!gramOnDevice(o)) return undefined;
  const g = o.gptqDevice!.gram(K);
  g.add(x, rows);
  return g;
}

export const PREVIEW_SAMPLES = 32;

export interface LayerNote {
  layer: number;
  seconds: number;
  /** AWQ's chosen α per input group */
  awqAlpha?: { attn: number; mlp: number; down: number };
}

/** One calibrated decoder layer, as calibrationLayers yields it. */
export interface LayerResult {
  layer: number;
  /** the layer's quantized weights, by HF name without `.weight` */
  weights: Map<string, QuantizedWeight>;
  /** its replaced norm weights (fp16-exact; only when scales are folded), by HF tensor name */
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

/** The input becomes x·r: the weights' columns are divided by r, the statistics scaled. */
function applyInputScale(r: Float32Array, linears: LinearWeight[], stats: InputStats): void {
  const K = r.length;
  for (const { w, N } of linears) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k] = w[n * K + k]! / r[k]!;
  if (stats.withChannels) for (let k = 0; k < K; k++) { stats.absSum[k]! *= r[k]!; stats.absMax[k]! *= r[k]!; }
  if (stats.withGram) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) stats.gram[i * K + j]! *= r[i]! * r[j]!;
}

/** The per-input-channel scales s (W·diag(s), x/s) of --smooth and AWQ, in that order, combined. */
function channelScales(o: MethodOptions, linears: LinearWeight[], stats: InputStats, fold: (s: Float32Array) => Float32Array): number | undefined {
  if (o.smooth !== undefined) applyInputScale(fold(smoothScales(stats.absMax, linears, stats.K, o.smooth)), linears, stats);
  if (!searchesAwqScales(o)) return undefined;
  const found = awqSearchScales(linears, stats.K, stats.hessian(), stats.absMean(), o.group);
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
  /** `deviceGram`: the input's Gram matrix on the GPTQ device (deviceGramOf), else the device gets the CPU's Hessian */
  constructor(private readonly o: MethodOptions, stats: InputStats, private readonly deviceGram?: DeviceGram) { this.K = stats.K; this.stats = stats; }

  quantize(w: Float32Array, N: number, name: string, isQueryOrKey = false): QuantizedWeight {
    const K = this.K, o = this.o;
    if (o.method === 'gptq' && o.gptqDevice) {
      const opts = { actOrder: o.actOrder ?? false, name, ...(o.percdamp !== undefined ? { percdamp: o.percdamp } : {}) };
      this.onDevice ??= o.gptqDevice.beginGroup(this.deviceGram ? { gram: this.deviceGram } : { hessian: this.stats!.hessian() }, K, opts);
      this.stats = undefined;
      return this.onDevice.quantize(w, N, { group: o.group, actOrder: o.actOrder ?? false, clip: o.clip ?? false, name, ...(o.blockSize !== undefined ? { blockSize: o.blockSize } : {}) }).qw;
    }
    if (o.method === 'gptq') {
      // the fresh Hessian is consumed (no copy)
      this.prepared ??= prepareHessian(this.stats!.hessian(), K, { actOrder: o.actOrder ?? false, name, consume: true, ...(o.percdamp !== undefined ? { percdamp: o.percdamp } : {}) });
      this.stats = undefined;
      return gptqQuantize(w, N, K, this.prepared, { group: o.group, actOrder: o.actOrder ?? false, clip: o.clip ?? false, name, ...(o.blockSize !== undefined ? { blockSize: o.blockSize } : {}) }).qw;
    }
    // AWQ skips the clip search for q/k (their output error does not measure the attention scores')
    if (o.method === 'awq' && !isQueryOrKey) return awqClipQuantize(w, N, K, this.stats!.hessian(), o.group, name);
    return quantizeRtn(w, N, K, { group: o.group, clip: o.clip ?? false, name });
  }
}

function statsOf(x: Float32Array, rows: number, K: number, gram: boolean, channels = true): InputStats {
  const s = new InputStats(K, gram, channels);
  s.add(x, rows);
  return s;
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
  if (c.arch === 'mixtral') fail('calibration', 'mixture-of-experts models are not supported');
  if (windows.length === 0) fail('calibration', 'no calibration windows');
  const T = windows[0]!.length, S = windows.length, M = S * T, dim = c.dim, eps = c.normEps;
  if (windows.some((x) => x.length !== T)) fail('calibration', 'calibration windows differ in length');
  if (T > c.maxSeq) fail('calibration', `windows of ${T} positions exceed the model's context of ${c.maxSeq}`);
  const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim, hid = c.hiddenDim;
  for (const K of [dim, qDim, hid]) resolveGroupSize(o.group, K, 'calibration');
  const gram = o.method !== 'rtn' && !gramOnDevice(o);
  const folds = foldsChannelScales(o), channels = folds; // per-channel magnitudes: AWQ, SmoothQuant
  const rope = calibRope(c, T);
  const lin: typeof linearRows = o.gptqDevice?.linearRows ? (...a) => o.gptqDevice!.linearRows!(...a) : linearRows; // the forward's linears
  const previewRows = Math.min(S, o.previewSamples ?? PREVIEW_SAMPLES) * T;

  for (const ids of windows) for (const id of ids)
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) fail('calibration', `token id ${id} outside the vocabulary of ${c.vocabSize}`);
  let x: Float32Array = new Float32Array(M * dim);
  {
    const embedding = source.embedding(); // dropped once the first layer's inputs are copied
    windows.forEach((ids, s) => ids.forEach((id, t) => x.set(embedding.subarray(id * dim, (id + 1) * dim), (s * T + t) * dim)));
  }

  const heapRows: Float32Array[] = []; // returned after use, and on any error
  try {
    for (let l = 0; l < c.nLayers; l++) {
      const started = performance.now();
      const L = source.layer(l), pre = `model.layers.${l}.`;
      const wq = { w: L.wq, N: qDim }, wk = { w: L.wk, N: kvDim }, wv = { w: L.wv, N: kvDim }, wo = { w: L.wo, N: dim };
      const wg = { w: L.w1, N: hid }, wu = { w: L.w3, N: hid }, wd = { w: L.w2, N: dim };
      const ga = L.attnNorm, gf = L.ffnNorm;
      const note: LayerNote = { layer: l, seconds: 0 };
      const step: LayerResult = { layer: l, weights: new Map(), norms: new Map(), note };
      const put = (name: string, qw: QuantizedWeight): Float32Array => { step.weights.set(`${pre}${name}`, qw); return dequantize(qw); };

      // q/k/v: input = input_layernorm(x)
      let xa = rmsNormRows(x, ga, M, dim, eps);
      const sa = statsOf(xa, M, dim, gram, channels);
      const alphaA = channelScales(o, [wq, wk, wv], sa, (s) => foldIntoNorm(ga, s));
      if (folds) xa = rmsNormRows(x, ga, M, dim, eps);
      const qa = new GroupQuantizer(o, sa, deviceGramOf(o, xa, M, dim));
      const dq = put('self_attn.q_proj', qa.quantize(wq.w, qDim, `${pre}self_attn.q_proj`, true));
      const dk = put('self_attn.k_proj', qa.quantize(wk.w, kvDim, `${pre}self_attn.k_proj`, true));
      const dv = put('self_attn.v_proj', qa.quantize(wv.w, kvDim, `${pre}self_attn.v_proj`));

      // o: input = attention output with the quantized q/k/v
      // big intermediates live in the shared heap, where the pool's threads work on them in place
      const inHeap = (n: number) => { const a = heapF32(n); heapRows.push(a); return a; };
      const xb = attentionRows(lin(xa, M, dim, dq, qDim, L.bq, inHeap(M * qDim)), lin(xa, M, dim, dk, kvDim, L.bk, inHeap(M * kvDim)),
                               lin(xa, M, dim, dv, kvDim, L.bv, inHeap(M * kvDim)), S, T, c, rope);
      heapRows.splice(0).forEach(heapFree);
      xa = new Float32Array(0);
      const ob = new GroupQuantizer(o, statsOf(xb, M, qDim, gram, false), deviceGramOf(o, xb, M, qDim));
      const dO = put('self_attn.o_proj', ob.quantize(wo.w, dim, `${pre}self_attn.o_proj`));
      const x2 = addRows(x, lin(xb, M, qDim, dO, dim));

      // gate/up: input = post_attention_layernorm(x2)
      let xc = rmsNormRows(x2, gf, M, dim, eps);
      const sc = statsOf(xc, M, dim, gram, channels);
      const alphaC = channelScales(o, [wg, wu], sc, (s) => foldIntoNorm(gf, s));
      if (folds) xc = rmsNormRows(x2, gf, M, dim, eps);
      let alphaD: number | undefined;
      if (folds) {
        // down's per-channel scales, folded into up's rows before up is quantized: from a preview
        // of its input with the (scaled, not yet quantized) fp gate/up on the first windows
        const xp = xc.subarray(0, previewRows * dim);
        const preview = swigluRows(lin(xp, previewRows, dim, wg.w, hid, undefined, inHeap(previewRows * hid)),
                                   lin(xp, previewRows, dim, wu.w, hid, undefined, inHeap(previewRows * hid)));
        const sp = statsOf(preview, previewRows, hid, searchesAwqScales(o));
        heapRows.splice(0).forEach(heapFree);
        alphaD = channelScales(o, [wd], sp, (s) => {
          const r = Float32Array.from(s, (v) => 1 / v);
          for (let n = 0; n < hid; n++) for (let k = 0; k < dim; k++) wu.w[n * dim + k] = wu.w[n * dim + k]! * r[n]!;
          return r;
        });
      }
      const qc = new GroupQuantizer(o, sc, deviceGramOf(o, xc, M, dim));
      const dg = put('mlp.gate_proj', qc.quantize(wg.w, hid, `${pre}mlp.gate_proj`));
      const du = put('mlp.up_proj', qc.quantize(wu.w, hid, `${pre}mlp.up_proj`));

      // down: input = silu(gate(xc))·up(xc) with the quantized gate/up
      const xd = swigluRows(lin(xc, M, dim, dg, hid, undefined, inHeap(M * hid)), lin(xc, M, dim, du, hid, undefined, inHeap(M * hid)));
      xc = new Float32Array(0);
      const qd = new GroupQuantizer(o, statsOf(xd, M, hid, gram, false), deviceGramOf(o, xd, M, hid));
      const dd = put('mlp.down_proj', qd.quantize(wd.w, dim, `${pre}mlp.down_proj`));
      x = addRows(x2, lin(xd, M, hid, dd, dim));
      heapRows.splice(0).forEach(heapFree);

      if (folds) {
        step.norms.set(`${pre}input_layernorm.weight`, ga);
        step.norms.set(`${pre}post_attention_layernorm.weight`, gf);
      }
      if (alphaA !== undefined) note.awqAlpha = { attn: alphaA, mlp: alphaC!, down: alphaD! };
      note.seconds = (performance.now() - started) / 1000;
      yield step;
    }
  } finally {
    heapRows.splice(0).forEach(heapFree);
  }
}
