// A quantized model in memory: integer scales for the method's weights (computeIntegerScales,
// unchanged: derived after the method fixed its float scales), and swapping the quantized linears
// (in a given CPU mode) and any replaced norm weights into a loaded dense model, with a restore.
import { fail } from '../core/errors.ts';
import type { QuantMode } from '../core/modes.ts';
import type { QuantizedLayer } from '../io/qformat.ts';
import type { Model } from '../model/llama.ts';
import type { Linear } from '../model/linear.ts';
import { mapLinears } from '../model/weights.ts';
import { computeIntegerScales, type Amplifier } from './integer-scale.ts';
import { quantizedLinear } from './quantized-linears.ts';
import type { QuantizedWeight } from './rtn.ts';

export function withIntegerScales(weights: Map<string, QuantizedWeight>, amplifier: Amplifier): Map<string, QuantizedLayer> {
  const out = new Map<string, QuantizedLayer>();
  for (const [name, qw] of weights) out.set(name, { name, qw, is: computeIntegerScales(qw, amplifier, name) });
  return out;
}

const NORM_NAME = /^model\.layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight$/;

/** Swap in the norms (by HF name) and, unless mode is undefined (dense), the quantized linears; returns restore(). */
export function installQuantized(model: Model, layers: Map<string, QuantizedLayer>, norms: Map<string, Float32Array>, mode: QuantMode | undefined): () => void {
  const originals = new Map<string, Linear>();
  const created: Linear[] = [];
  const savedNorms: [number, 'attnNorm' | 'ffnNorm', Float32Array][] = [];
  for (const [name, value] of norms) {
    const m = NORM_NAME.exec(name);
    if (!m) fail(name, 'is not a decoder layer norm weight');
    const l = Number(m[1]), field = m[2] === 'input_layernorm' ? 'attnNorm' : 'ffnNorm';
    const layer = model.weights.layers[l];
    if (!layer || layer[field].length !== value.length) fail(name, 'does not match the model');
    savedNorms.push([l, field, layer[field]]);
    layer[field] = value;
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
    for (const [l, field, v] of savedNorms) model.weights.layers[l]![field] = v;
  };
}
