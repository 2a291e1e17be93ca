// Where the calibration pipeline (calibrate.ts) gets its dense weights: the embedding once (for the
// first layer's inputs), then one decoder layer at a time, as fresh fp32 arrays the pipeline may
// modify (the per-channel folds scale them in place). Two sources: a checkpoint's tensors
// (streaming: a layer's linears are read and converted to fp32 only when the pipeline's stage that
// needs them starts, and nothing keeps them after that stage), and a model already loaded in the CPU
// engine (copies of its weights, made on access).
import { fail } from '../core/errors.ts';
import { assertFiniteTensor } from '../core/finite.ts';
import type { TensorSource } from '../io/safetensors.ts';
import type { ModelConfig } from '../model/config.ts';
import type { Model } from '../model/llama.ts';
import type { Linear } from '../model/linear.ts';
import { denseLayer, rawWeightOf } from '../model/weights.ts';

/** One decoder layer's dense fp32 weights (row-major [out, in]; HF names in the comments). The
 *  linears are getters: each access reads (or copies) a fresh array, so take each once. */
export interface DenseLayer {
  /** input_layernorm */
  attnNorm: Float32Array;
  /** post_attention_layernorm */
  ffnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  /** gate_proj */
  w1: Float32Array;
  /** down_proj */
  w2: Float32Array;
  /** up_proj */
  w3: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
}

export interface CalibrationSource {
  readonly config: ModelConfig;
  /** [vocabSize, dim] fp32 (the pipeline copies the windows' rows and drops it) */
  embedding(): Float32Array;
  /** layer l's weights, fresh arrays owned by the caller */
  layer(l: number): DenseLayer;
}

/** A source over a model loaded in the CPU engine (dense fp32 linears); the model is not modified. */
export function modelCalibrationSource(model: Model): CalibrationSource {
  const c = model.config, w = model.weights;
  return {
    config: c,
    embedding: () => w.embedding,
    layer(l) {
      const pre = `model.layers.${l}.`, L = denseLayer(w.layers[l]!, `${pre}mlp`);
      const copy = (name: string, lin: Linear): Float32Array => {
        const raw = rawWeightOf(lin);
        if (!raw) fail(`${pre}${name}`, 'is not a dense fp32 linear (calibration needs the unquantized model)');
        return Float32Array.from(raw);
      };
      return {
        attnNorm: Float32Array.from(L.attnNorm), ffnNorm: Float32Array.from(L.ffnNorm),
        get wq() { return copy('self_attn.q_proj', L.wq); }, get wk() { return copy('self_attn.k_proj', L.wk); },
        get wv() { return copy('self_attn.v_proj', L.wv); }, get wo() { return copy('self_attn.o_proj', L.wo); },
        get w1() { return copy('mlp.gate_proj', L.w1); }, get w2() { return copy('mlp.down_proj', L.w2); }, get w3() { return copy('mlp.up_proj', L.w3); },
        ...(L.bq ? { bq: L.bq } : {}), ...(L.bk ? { bk: L.bk } : {}), ...(L.bv ? { bv: L.bv } : {}),
      };
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
      const layer: DenseLayer = {
        attnNorm: read(`${p}input_layernorm.weight`, [dim]), ffnNorm: read(`${p}post_attention_layernorm.weight`, [dim]),
        get wq() { return read(`${p}self_attn.q_proj.weight`, [qDim, dim]); }, get wk() { return read(`${p}self_attn.k_proj.weight`, [kvDim, dim]); },
        get wv() { return read(`${p}self_attn.v_proj.weight`, [kvDim, dim]); }, get wo() { return read(`${p}self_attn.o_proj.weight`, [dim, qDim]); },
        get w1() { return read(`${p}mlp.gate_proj.weight`, [hid, dim]); }, get w2() { return read(`${p}mlp.down_proj.weight`, [dim, hid]); },
        get w3() { return read(`${p}mlp.up_proj.weight`, [hid, dim]); },
      };
      if (c.qkvBias) {
        layer.bq = read(`${p}self_attn.q_proj.bias`, [qDim]);
        layer.bk = read(`${p}self_attn.k_proj.bias`, [kvDim]);
        layer.bv = read(`${p}self_attn.v_proj.bias`, [kvDim]);
      }
      return layer;
    },
  };
}
