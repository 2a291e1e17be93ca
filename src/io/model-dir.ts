// Recognise a model on disk: a Hugging Face directory (config.json + safetensors + tokenizer.json)
// or a llama2.c checkpoint (a .bin file, or a directory holding one checkpoint .bin and one
// tokenizer .bin). Loading it into an engine is src/model/load.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { readLlama2cHeader } from './llama2c.ts';

export type ModelKind =
  | { format: 'hf'; dir: string }
  | { format: 'llama2c'; checkpoint: string; tokenizer?: string };

/** What kind of model lives at `p`, or a one-line error. */
export function detectModel(p: string): ModelKind {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    fail(p, 'no such file or directory');
  }
  if (st.isFile()) {
    if (!p.endsWith('.bin')) fail(p, 'not a model: expected a directory or a llama2.c .bin checkpoint');
    const tok = siblingTokenizer(path.dirname(p), p);
    return tok ? { format: 'llama2c', checkpoint: p, tokenizer: tok } : { format: 'llama2c', checkpoint: p };
  }
  if (fs.existsSync(path.join(p, 'config.json'))) return { format: 'hf', dir: p };
  const bins = fs.readdirSync(p).filter((f) => f.endsWith('.bin')).map((f) => path.join(p, f));
  const checkpoints = bins.filter(isLlama2cCheckpoint);
  if (checkpoints.length === 1) {
    const tok = siblingTokenizer(p, checkpoints[0]!);
    return tok ? { format: 'llama2c', checkpoint: checkpoints[0]!, tokenizer: tok } : { format: 'llama2c', checkpoint: checkpoints[0]! };
  }
  if (checkpoints.length > 1) fail(p, `several llama2.c checkpoints (${checkpoints.map((b) => path.basename(b)).join(', ')}): name the .bin file`);
  fail(p, 'not a model directory: no config.json and no llama2.c checkpoint');
}

function isLlama2cCheckpoint(file: string): boolean {
  try {
    readLlama2cHeader(file);
    return fs.statSync(file).size > 1024 + 28 && !/tok/i.test(path.basename(file));
  } catch {
    return false;
  }
}

/** A tokenizer .bin next to a checkpoint: tokenizer.bin, or the only other tok*.bin. */
function siblingTokenizer(dir: string, checkpoint: string): string | undefined {
  const cands = fs.readdirSync(dir).filter((f) => f.endsWith('.bin') && /tok/i.test(f)).map((f) => path.join(dir, f))
    .filter((f) => path.resolve(f) !== path.resolve(checkpoint));
  const named = cands.find((f) => path.basename(f) === 'tokenizer.bin');
  return named ?? (cands.length === 1 ? cands[0] : undefined);
}
