// Where the calibration pipeline (calibrate.ts) gets its dense weights: the embedding once (for the
// first layer's inputs), then one decoder layer at a time, as fresh fp32 arrays the pipeline may
// modify (the per-channel folds scale them in place); a Mixtral layer holds its router and each
// expert's MLP instead of one MLP. Two sources: a checkpoint's tensors
// (streaming: a layer's linears are read and converted to fp32 only when the pipeline's stage that
// needs them starts, and nothing keeps them after that stage), and a model already loaded in the CPU
// engine (copies of its weights, made on access).
import { fail } from '../core/errors.ts';
import { assertFiniteTensor } from '../core/finite.ts';
import type { TensorSource } from '../io/safetensors.ts';
import type { ModelConfig } from '../model/config.ts';
import type { Model } from '../model/llama.ts';
import type { Linear } from '../model/linear.ts';
import { expertLinearName, isMoeLayer, MLP_LINEAR_NAMES, rawWeightOf, ROUTER_NAME, type SwigluWeights } from '../model/weights.ts';

/** One SwiGLU MLP's dense fp32 weights (getters: each access reads or copies a fresh array). */
export interface MlpWeights {
  /** gate_proj (Mixtral: w1) */
  w1: Float32Array;
  /** down_proj (w2) */
  w2: Float32Array;
  /** up_proj (w3) */
  w3: Float32Array;
}

/** One decoder layer's dense fp32 weights (row-major [out, in]; HF names in the comments). The
 *  linears are getters: each access reads (or copies) a fresh array, so take each once. */
interface AttentionLayer {
  /** input_layernorm */
  attnNorm: Float32Array;
  /** post_attention_layernorm */
  ffnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
}

/** A layer with one SwiGLU MLP. */
export interface DenseLayer extends AttentionLayer, MlpWeights {}

/** A Mixtral layer: the router [experts, dim] and each expert's MLP. */
export interface MoeLayer extends AttentionLayer {
  moe: { router: Float32Array; topK: number; experts: MlpWeights[] };
}

export type CalibLayer = DenseLayer | MoeLayer;

export interface CalibrationSource {
  readonly config: ModelConfig;
  /** [vocabSize, dim] fp32 (the pipeline copies the windows' rows and drops it) */
  embedding(): Float32Array;
  /** layer l's weights, fresh arrays owned by the caller */
  layer(l: number): CalibLayer;
}

/** A source over a model loaded in the CPU engine (dense fp32 linears); the model is not modified. */
export function modelCalibrationSource(model: Model): CalibrationSource {
  const c = model.config, w = model.weights;
  return {
    config: c,
    embedding: () => w.embedding,
    layer(l) {
      const pre = `model.layers.${l}.`, L = w.layers[l]!;
      const copy = (name: string, lin: Linear): Float32Array => {
        const raw = rawWeightOf(lin);
        if (!raw) fail(`${pre}${name}`, 'is not a dense fp32 linear (calibration needs the unquantized model)');
        return Float32Array.from(raw);
      };
      const mlp = (m: SwigluWeights, name: (f: keyof SwigluWeights) => string): MlpWeights => ({
        get w1() { return copy(name('w1'), m.w1); }, get w2() { return copy(name('w2'), m.w2); }, get w3() { return copy(name('w3'), m.w3); },
      });
      const attention: AttentionLayer = {
        attnNorm: Float32Array.from(L.attnNorm), ffnNorm: Float32Array.from(L.ffnNorm),
        get wq() { return copy('self_attn.q_proj', L.wq); }, get wk() { return copy('self_attn.k_proj', L.wk); },
        get wv() { return copy('self_attn.v_proj', L.wv); }, get wo() { return copy('self_attn.o_proj', L.wo); },
        ...(L.bq ? { bq: L.bq } : {}), ...(L.bk ? { bk: L.bk } : {}), ...(L.bv ? { bv: L.bv } : {}),
      };
      if (!isMoeLayer(L)) return Object.defineProperties(attention, Object.getOwnPropertyDescriptors(mlp(L, (f) => MLP_LINEAR_NAMES[f]))) as DenseLayer;
      const m = L.moe;
      return Object.assign(attention, { moe: {
        router: copy(ROUTER_NAME, m.router), topK: m.topK, experts: m.experts.map((x, e) => mlp(x, (f) => expertLinearName(e, f))),
      } }) as MoeLayer;
    },
  };
}

/** A streaming source over a checkpoint's tensors (HF LLaMA names; shapes checked, non-finite values refused by name). */
export function tensorCalibrationSource(src: TensorSource, c: ModelConfig): CalibrationSource {
  const read = (name: string, shape: number[]): Float32Array => {
    if (!src.has(name)) fail(name, 'is missing from the checkpoint');
    const info = src.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))
      fail(name, `has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
    const data = src.readF32(name);
    assertFiniteTensor(name, data, shape[1] ?? shape[0]);
    return data;
  };
  const { dim, hiddenDim: hid } = c, qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
  return {
    config: c,
    embedding: () => read('model.embed_tokens.weight', [c.vocabSize, dim]),
    layer(l) {
      const p = `model.layers.${l}.`;
      const mlp = (name: (f: keyof SwigluWeights) => string): MlpWeights => ({
        get w1() { return read(`${p}${name('w1')}.weight`, [hid, dim]); }, get w2() { return read(`${p}${name('w2')}.weight`, [dim, hid]); },
        get w3() { return read(`${p}${name('w3')}.weight`, [hid, dim]); },
      });
      const layer: AttentionLayer = {
        attnNorm: read(`${p}input_layernorm.weight`, [dim]), ffnNorm: read(`${p}post_attention_layernorm.weight`, [dim]),
        get wq() { return read(`${p}self_attn.q_proj.weight`, [qDim, dim]); }, get wk() { return read(`${p}self_attn.k_proj.weight`, [kvDim, dim]); },
        get wv() { return read(`${p}self_attn.v_proj.weight`, [kvDim, dim]); }, get wo() { return read(`${p}self_attn.o_proj.weight`, [dim, qDim]); },
      };
      if (c.qkvBias) {
        layer.bq = read(`${p}self_attn.q_proj.bias`, [qDim]);
        layer.bk = read(`${p}self_attn.k_proj.bias`, [kvDim]);
        layer.bv = read(`${p}self_attn.v_proj.bias`, [kvDim]);
      }
      if (c.arch !== 'mixtral') return Object.defineProperties(layer, Object.getOwnPropertyDescriptors(mlp((f) => MLP_LINEAR_NAMES[f]))) as DenseLayer;
      const E = c.nExperts!;
      return Object.assign(layer, { moe: {
        router: read(`${p}${ROUTER_NAME}.weight`, [E, dim]), topK: c.nExpertsPerTok!,
        experts: Array.from({ length: E }, (_, e) => mlp((f) => expertLinearName(e, f))),
      } }) as MoeLayer;
    },
  };
}
