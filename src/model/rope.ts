// Rotary position embeddings: per-pair inverse frequencies (default, linear and llama3 scaling, as
// transformers computes them) and the rotation of one head vector in either pairing layout.
import type { RopeConfig } from './config.ts';

/** inv_freq[i] for i in [0, headDim/2), in fp32 like transformers. */
export function ropeInverseFrequencies(rope: RopeConfig, headDim: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(rope.theta, (2 * i) / headDim);
  const s = rope.scaling;
  if (!s) return inv;
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / s.factor;
    return inv;
  }
  // llama3: long wavelengths divided by factor, short ones kept, a smooth blend in between
  const lowFreqWavelen = s.originalMaxPos / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPos / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) continue;
    if (wavelen > lowFreqWavelen) { inv[i] = f / s.factor; continue; }
    const smooth = (s.originalMaxPos / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    inv[i] = (1 - smooth) * (f / s.factor) + smooth * f;
  }
  return inv;
}

/** cos/sin tables [maxSeq, headDim/2]: angle = fp32(pos · inv_freq[i]). */
export interface RopeTables { cos: Float32Array; sin: Float32Array; half: number }

export function ropeTables(rope: RopeConfig, headDim: number, maxSeq: number): RopeTables {
  const inv = ropeInverseFrequencies(rope, headDim);
  const half = headDim / 2;
  const cos = new Float32Array(maxSeq * half), sin = new Float32Array(maxSeq * half);
  for (let p = 0; p < maxSeq; p++)
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inv[i]!);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  return { cos, sin, half };
}

/**
 * Rotate `nHeads` consecutive head vectors of length 2·half starting at v[off], for position pos.
 * 'half': pairs (i, i+half) (HF rotate_half); 'interleaved': pairs (2i, 2i+1) (llama2.c, Meta).
 */
export function applyRope(v: Float32Array, off: number, nHeads: number, pos: number, t: RopeTables,
                          layout: 'half' | 'interleaved'): void {
  const half = t.half, base = pos * half, hd = 2 * half;
  for (let h = 0; h < nHeads; h++) {
    const o = off + h * hd;
    for (let i = 0; i < half; i++) {
      const c = t.cos[base + i]!, s = t.sin[base + i]!;
      const a = layout === 'half' ? o + i : o + 2 * i;
      const b = layout === 'half' ? o + i + half : o + 2 * i + 1;
      const x0 = v[a]!, x1 = v[b]!;
      v[a] = x0 * c - x1 * s;
      v[b] = x1 * c + x0 * s;
    }
  }
}
