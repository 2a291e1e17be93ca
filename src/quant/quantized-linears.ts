// Which CPU Linear runs a quantized layer (W4A16, W4A8-FS, W4A8-IS, W4A8-PC), and loading every
// quantized linear of an intscale checkpoint as such Linears (for the CPU engine).
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import type { QuantMode } from '../core/modes.ts';
import type { Linear } from '../model/linear.ts';
import type { TensorSource } from '../io/safetensors.ts';
import { readQuantizedLayer, type QuantizationConfig, type QuantizedLayer } from '../io/qformat.ts';
import { allProjections, openValidatedModelDir } from '../io/validate-model.ts';
import { IsLinear } from './linear-is.ts';
import { FsLinear } from './linear-fs.ts';
import { PcLinear } from './linear-pc.ts';
import { W4A16Linear } from './linear-w4a16.ts';

/** The CPU Linear running a quantized layer in a given mode. */
export function quantizedLinear(layer: QuantizedLayer, mode: QuantMode): Linear {
  switch (mode) {
    case 'w4a16': return new W4A16Linear(layer.qw);
    case 'w4a8-fs': return new FsLinear(layer.qw);
    case 'w4a8-is': return new IsLinear(layer.qw, layer.is, layer.name);
    case 'w4a8-pc': return new PcLinear(layer.qw, layer.name);
  }
}

/** The mode a checkpoint's quantization_config asks for. */
export function modeOf(q: QuantizationConfig): QuantMode {
  if (q.act_bits === 16) return 'w4a16';
  return q.scale === 'int' ? 'w4a8-is' : 'w4a8-fs';
}

/**
 * The loader hook: every quantized linear of the checkpoint in `dir`, as a Linear keyed by name
 * (e.g. 'model.layers.0.self_attn.q_proj'), running in the config's mode unless `mode` is given.
 * The directory is validated against its config first (src/io/validate-model.ts).
 */
export function loadQuantizedLinears(dir: string, mode?: QuantMode): Map<string, Linear> {
  const { config, quant, src } = openValidatedModelDir(dir);
  try {
    if (!quant) fail(path.join(dir, 'config.json'), 'has no quantization_config (not an intscale checkpoint)');
    const out = new Map<string, Linear>();
    try {
      for (const [name] of allProjections(config)) out.set(name, quantizedLinear(readQuantizedLayer(src, name, quant), mode ?? modeOf(quant)));
    } catch (e) {
      for (const l of out.values()) l.dispose?.(); // a refused file leaves no heap memory behind
      throw e;
    }
    return out;
  } finally {
    src.close();
  }
}

/**
 * The hook src/model/load.ts calls while loading an intscale checkpoint (already validated against
 * its config): the quantized Linear of a projection by name ('model.layers.0.self_attn.q_proj'),
 * in the config's mode (or `mode`).
 */
export function quantizedLinearHook(src: TensorSource, quant: QuantizationConfig, mode?: QuantMode): (name: string) => Linear | undefined {
  const runAs = mode ?? modeOf(quant);
  return (name) => (src.has(`${name}.qweight`) ? quantizedLinear(readQuantizedLayer(src, name, quant), runAs) : undefined);
}
