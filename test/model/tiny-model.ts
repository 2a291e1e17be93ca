// A tiny random LLaMA-family model for tests (no shared files), optionally with Mixtral's sparse
// mixture of experts in place of the MLP, and an independent float64 forward pass written from the
// equations, to check the engine and everything built on it.
import { Rng } from '../../src/core/rng.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { Model } from '../../src/model/llama.ts';
import { denseLinear, type LayerWeights, type ModelWeights } from '../../src/model/weights.ts';

/** Mixtral's feed-forward instead of the MLP: `experts` SwiGLU experts, `topK` per token. */
export interface TinyMoe {
  experts: number;
  topK: number;
}

export function tinyModel(layout: 'half' | 'interleaved', bias: boolean, moe?: TinyMoe): { model: Model; raw: Raw } {
  const config: ModelConfig = {
    arch: moe ? 'mixtral' : bias ? 'qwen2' : 'llama', dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8,
    vocabSize: 40, maxSeq: 24, normEps: 1e-5, rope: { theta: 10000, layout }, tieEmbeddings: false, qkvBias: bias,
    ...(moe ? { nExperts: moe.experts, nExpertsPerTok: moe.topK } : {}),
  };
  const rng = new Rng(layout === 'half' ? (moe ? 3 : 1) : 2);
  const m = (r: number, c: number) => rng.normals(r * c, 0.3);
  const mlp = () => ({ w1: m(48, 32), w2: m(32, 48), w3: m(48, 32) });
  const raw: Raw = {
    config, emb: m(40, 32), final: Float32Array.from(rng.normals(32, 0.1), (v) => 1 + v), head: m(40, 32),
    layers: Array.from({ length: 2 }, () => ({
      an: Float32Array.from(rng.normals(32, 0.1), (v) => 1 + v), fn: Float32Array.from(rng.normals(32, 0.1), (v) => 1 + v),
      wq: m(32, 32), wk: m(16, 32), wv: m(16, 32), wo: m(32, 32), ...mlp(),
      bq: bias ? rng.normals(32, 0.2) : undefined, bk: bias ? rng.normals(16, 0.2) : undefined, bv: bias ? rng.normals(16, 0.2) : undefined,
      // a router with logits of order 1 (std 0.3 · |h| ≈ 1.7) spreads tokens over the experts
      ...(moe ? { moe: { router: m(moe.experts, 32), topK: moe.topK, experts: Array.from({ length: moe.experts }, mlp) } } : {}),
    })),
  };
  const dense = (w: { w1: Float32Array; w2: Float32Array; w3: Float32Array }) =>
    ({ w1: denseLinear(w.w1, 48, 32), w2: denseLinear(w.w2, 32, 48), w3: denseLinear(w.w3, 48, 32) });
  const weights: ModelWeights = {
    embedding: raw.emb, finalNorm: raw.final, lmHead: denseLinear(raw.head, 40, 32),
    layers: raw.layers.map((l): LayerWeights => {
      const attention = {
        attnNorm: l.an, ffnNorm: l.fn,
        wq: denseLinear(l.wq, 32, 32), wk: denseLinear(l.wk, 16, 32), wv: denseLinear(l.wv, 16, 32), wo: denseLinear(l.wo, 32, 32),
        ...(l.bq ? { bq: l.bq, bk: l.bk!, bv: l.bv! } : {}),
      };
      return l.moe
        ? { ...attention, moe: { router: denseLinear(l.moe.router, l.moe.experts.length, 32), topK: l.moe.topK, experts: l.moe.experts.map(dense) } }
        : { ...attention, ...dense(l) };
    }),
  };
  return { model: { config, weights }, raw };
}

export interface Raw {
  config: ModelConfig; emb: Float32Array; final: Float32Array; head: Float32Array;
  layers: { an: Float32Array; fn: Float32Array; wq: Float32Array; wk: Float32Array; wv: Float32Array; wo: Float32Array;
    w1: Float32Array; w2: Float32Array; w3: Float32Array; bq: Float32Array | undefined; bk: Float32Array | undefined; bv: Float32Array | undefined;
    /** Mixtral: the router [experts, 32] and the experts (the layer's own w1/w2/w3 are then unused) */
    moe?: { router: Float32Array; topK: number; experts: { w1: Float32Array; w2: Float32Array; w3: Float32Array }[] } }[];
}

/** The experts the float64 reference routes a row of RMSNorm output h to: [expert, weight] pairs,
 *  most probable first (softmax over all experts, top k, renormalized). */
export function referenceRouting(router: Float32Array, experts: number, topK: number, h: number[]): [number, number][] {
  const logits = Array.from({ length: experts }, (_, e) => h.reduce((s, v, k) => s + v * router[e * h.length + k]!, 0));
  const mx = Math.max(...logits), p = logits.map((v) => Math.exp(v - mx)), z = p.reduce((a, b) => a + b, 0);
  const top = p.map((v, e) => [e, v / z] as [number, number]).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, topK);
  const kept = top.reduce((s, [, v]) => s + v, 0);
  return top.map(([e, v]) => [e, v / kept]);
}

/** Float64 reference: logits of every position of `tokens`, recomputing everything. */
export function referenceLogits(r: Raw, tokens: number[]): number[][] {
  const c = r.config, T = tokens.length, d = c.dim, hd = c.headDim;
  const lin = (w: Float32Array, x: number[], out: number, b?: Float32Array) =>
    Array.from({ length: out }, (_, n) => x.reduce((s, v, k) => s + v * w[n * x.length + k]!, b ? b[n]! : 0));
  const norm = (x: number[], w: Float32Array) => { const rms = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + c.normEps); return x.map((v, i) => (v / rms) * w[i]!); };
  const rope = (v: number[], pos: number) => {
    const out = [...v];
    for (let h = 0; h < v.length / hd; h++)
      for (let i = 0; i < hd / 2; i++) {
        const a = pos * Math.pow(c.rope.theta, (-2 * i) / hd);
        const [p, q] = c.rope.layout === 'half' ? [h * hd + i, h * hd + i + hd / 2] : [h * hd + 2 * i, h * hd + 2 * i + 1];
        out[p] = v[p]! * Math.cos(a) - v[q]! * Math.sin(a);
        out[q] = v[p]! * Math.sin(a) + v[q]! * Math.cos(a);
      }
    return out;
  };
  let xs = tokens.map((t) => Array.from(r.emb.subarray(t * d, (t + 1) * d)));
  for (const l of r.layers) {
    const hs = xs.map((x) => norm(x, l.an));
    const qs = hs.map((h, t) => rope(lin(l.wq, h, 32, l.bq), t));
    const ks = hs.map((h, t) => rope(lin(l.wk, h, 16, l.bk), t));
    const vs = hs.map((h) => lin(l.wv, h, 16, l.bv));
    xs = xs.map((x, t) => {
      const att: number[] = [];
      for (let h = 0; h < c.nHeads; h++) {
        const g = Math.floor(h / (c.nHeads / c.nKvHeads));
        const sc = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qs[t]![h * hd + i]! * ks[s]![g * hd + i]!;
          return dot / Math.sqrt(hd);
        });
        const mx = Math.max(...sc), e = sc.map((v) => Math.exp(v - mx)), z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hd; i++) att.push(e.reduce((s, p, j) => s + (p / z) * vs[j]![g * hd + i]!, 0));
      }
      const o = lin(l.wo, att, 32);
      return x.map((v, i) => v + o[i]!);
    });
    const swiglu = (w: { w1: Float32Array; w2: Float32Array; w3: Float32Array }, h: number[]) => {
      const g = lin(w.w1, h, 48), u = lin(w.w3, h, 48);
      return lin(w.w2, g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]!), 32);
    };
    xs = xs.map((x) => {
      const h = norm(x, l.fn);
      if (!l.moe) return swiglu(l, h).map((v, i) => x[i]! + v);
      const out = x.map(() => 0);
      for (const [e, w] of referenceRouting(l.moe.router, l.moe.experts.length, l.moe.topK, h))
        swiglu(l.moe.experts[e]!, h).forEach((v, i) => { out[i]! += w * v; });
      return x.map((v, i) => v + out[i]!);
    });
  }
  return xs.map((x) => lin(r.head, norm(x, r.final), c.vocabSize));
}

