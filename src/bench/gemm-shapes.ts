// The GEMM shapes benchmarked: each model's linear layers as (K, N) = (in_features, out_features),
// with q/k/v and gate/up fused as engines run them.
import { fail } from '../core/errors.ts';

export interface GemmShape {
  /** e.g. 'llama2-7b.qkv' */
  name: string;
  K: number;
  N: number;
}

export const SHAPE_SETS: Record<string, GemmShape[]> = {
  'llama2-7b': [
    { name: 'llama2-7b.qkv', K: 4096, N: 12288 },
    { name: 'llama2-7b.o', K: 4096, N: 4096 },
    { name: 'llama2-7b.gate_up', K: 4096, N: 22016 },
    { name: 'llama2-7b.down', K: 11008, N: 4096 },
  ],
  'llama3-8b': [
    { name: 'llama3-8b.qkv', K: 4096, N: 6144 },
    { name: 'llama3-8b.o', K: 4096, N: 4096 },
    { name: 'llama3-8b.gate_up', K: 4096, N: 28672 },
    { name: 'llama3-8b.down', K: 14336, N: 4096 },
  ],
};

export const DEFAULT_M = [1, 4, 16, 64, 128, 256, 1024, 4096];

/** Parse `--shapes llama2-7b,llama3-8b` (set names) or explicit `KxN` items. */
export function parseShapes(text: string): GemmShape[] {
  const out: GemmShape[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const set = SHAPE_SETS[item];
    const kn = /^(\d+)x(\d+)$/.exec(item);
    if (set) out.push(...set);
    else if (kn) out.push({ name: item, K: Number(kn[1]), N: Number(kn[2]) });
    else fail('--shapes', `unknown shape '${item}' (known: ${Object.keys(SHAPE_SETS).join(', ')}, or KxN)`);
  }
  if (out.length === 0) fail('--shapes', 'no shapes given');
  return out;
}

/** Parse `--m 1,4,16` into positive integers. */
export function parseMs(text: string): number[] {
  const ms = text.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (ms.length === 0 || ms.some((m) => !Number.isInteger(m) || m < 1)) fail('--m', `expected positive integers, got '${text}'`);
  return ms;
}
