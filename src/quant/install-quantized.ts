// A quantized model in memory: integer scales for the method's weights (computeIntegerScales,
// unchanged: derived after the method fixed its float scales), and swapping the quantized linears
// (in a given CPU mode) and any replaced norm (or Mixtral router) weights into a loaded dense model, with a restore.
import { fail } from '../core/errors.ts';
import type { QuantMode } from '../core/modes.ts';
import type { QuantizedLayer } from '../io/qformat.ts';
import type { Model } from '../model/llama.ts';
import type { Linear } from '../model/linear.ts';
import { denseLinear, isMoeLayer, mapLinears, ROUTER_NAME } from '../model/weights.ts';
import { computeIntegerScales, type Amplifier } from './integer-scale.ts';
import { quantizedLinear } from './quantized-linears.ts';
import type { QuantizedWeight } from './rtn.ts';

export function withIntegerScales(weights: Map<string, QuantizedWeight>, amplifier: Amplifier): Map<string, QuantizedLayer> {
  const out = new Map<string, QuantizedLayer>();
  for (const [name, qw] of weights) out.set(name, { name, qw, is: computeIntegerScales(qw, amplifier, name) });
  return out;
}

const NORM_NAME = /^model\.layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight$/;
const ROUTER_TENSOR = new RegExp(`^model\\.layers\\.(\\d+)\\.${ROUTER_NAME.replace('.', '\\.')}\\.weight$`);

/**
 * Swap in the replaced dense tensors the per-channel folds made (by HF name: norm weights, and a
 * Mixtral router whose columns absorbed the experts' input scale) and, unless mode is undefined
 * (dense), the quantized linears; returns restore().
 */
export function installQuantized(model: Model, layers: Map<string, QuantizedLayer>, norms: Map<string, Float32Array>, mode: QuantMode | undefined): () => void {
  const originals = new Map<string, Linear>();
  const created: Linear[] = [];
  const saved: (() => void)[] = [];
  for (const [name, value] of norms) {
    const m = NORM_NAME.exec(name), router = ROUTER_TENSOR.exec(name);
    const layer = model.weights.layers[Number((m ?? router)?.[1] ?? -1)];
    if (m) {
      const field = m[2] === 'input_layernorm' ? 'attnNorm' : 'ffnNorm';
      if (!layer || layer[field].length !== value.length) fail(name, 'does not match the model');
      const old = layer[field];
      saved.push(() => { layer[field] = old; });
      layer[field] = value;
    } else if (router) {
      if (!layer || !isMoeLayer(layer) || layer.moe.router.outFeatures * layer.moe.router.inFeatures !== value.length) fail(name, 'does not match the model');
      const moe = layer.moe, old = moe.router;
      saved.push(() => { moe.router = old; });
      moe.router = denseLinear(value, old.outFeatures, old.inFeatures);
    } else fail(name, 'is not a decoder layer norm or router weight');
  }
  if (mode !== undefined) {
    mapLinears(model.weights, (name, linear) => {
      originals.set(name, linear);
      const q = layers.get(name);
      if (!q) return linear;
      const ql = quantizedLinear(q, mode);
      created.push(ql);
      return ql;
    });
  }
  return () => {
    if (mode !== undefined) mapLinears(model.weights, (name, l) => originals.get(name) ?? l);
    for (const l of created) l.dispose?.();
    for (const restore of saved) restore();
  };
}
