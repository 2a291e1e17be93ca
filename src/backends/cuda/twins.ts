// CPU twins of the engine kernels (src/gpu/kernels/{layer_ops,rope_kv,attention,sample,moe_route,moe_rows}.cu): the
// same function on the same fp16 inputs, computed in float64, for the GPU tests to compare with a
// stated tolerance. (Kernels that must be bit-exact are checked against the CPU spec itself:
// quant/act-quant, quant/rtn, quant/integer-scale, gpu/repack.)
import { f16ToF32, f32ToF16 } from '../../core/dtype.ts';

/** fp16 bits → numbers. */
export const halves = (bits: Uint16Array): Float64Array => Float64Array.from(bits, f16ToF32);

/** RMSNorm of fp16 rows, as fp32: w · x / sqrt(mean(x²) + eps) (what the int8 variant quantizes). */
export function rmsnormF32Twin(x: Uint16Array, w: Uint16Array, rows: number, dim: number, eps: number): Float32Array {
  const out = new Float32Array(rows * dim), xv = halves(x), wv = halves(w);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += xv[r * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = wv[i]! * xv[r * dim + i]! * inv;
  }
  return out;
}

/** RMSNorm of fp16 rows: fp16(w · x / sqrt(mean(x²) + eps)). */
export function rmsnormTwin(x: Uint16Array, w: Uint16Array, rows: number, dim: number, eps: number): Uint16Array {
  return Uint16Array.from(rmsnormF32Twin(x, w, rows, dim, eps), f32ToF16);
}

/** SwiGLU of fused [gate | up] fp16 rows, as fp32: silu(g) · u. */
export function swigluF32Twin(gu: Uint16Array, rows: number, hidden: number): Float32Array {
  const out = new Float32Array(rows * hidden), v = halves(gu);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < hidden; i++) {
      const g = v[r * 2 * hidden + i]!, u = v[r * 2 * hidden + hidden + i]!;
      out[r * hidden + i] = (g / (1 + Math.exp(-g))) * u;
    }
  return out;
}

/** SwiGLU of fused [gate | up] fp16 rows: fp16(silu(g) · u). */
export function swigluTwin(gu: Uint16Array, rows: number, hidden: number): Uint16Array {
  return Uint16Array.from(swigluF32Twin(gu, rows, hidden), f32ToF16);
}

/** RoPE of one head vector (fp16 values) at table row `pos` ('half': pairs (i, i+hd/2); else (2i, 2i+1)). */
export function ropeTwin(head: Float64Array, cos: Float32Array, sin: Float32Array, pos: number, layout: 'half' | 'interleaved'): Uint16Array {
  const hd = head.length, half = hd / 2, out = new Uint16Array(hd);
  for (let i = 0; i < half; i++) {
    const a = layout === 'half' ? i : 2 * i, b = layout === 'half' ? i + half : 2 * i + 1;
    const c = cos[pos * half + i]!, s = sin[pos * half + i]!;
    out[a] = f32ToF16(head[a]! * c - head[b]! * s);
    out[b] = f32ToF16(head[b]! * c + head[a]! * s);
  }
  return out;
}

/**
 * Causal attention of one query row (fp16 values, length hd) at position p over keys/values
 * [0, p] (and > p − window when window > 0) given as fp16 rows: float64 softmax(q·k/√hd)·V.
 */
export function attentionTwin(q: Float64Array, keys: (k: number) => Float64Array, values: (k: number) => Float64Array, p: number, window = 0): Float64Array {
  const hd = q.length, lo = window > 0 ? Math.max(0, p - window + 1) : 0;
  const scores: number[] = [];
  for (let k = lo; k <= p; k++) {
    const kv = keys(k);
    let dot = 0;
    for (let d = 0; d < hd; d++) dot += q[d]! * kv[d]!;
    scores.push(dot / Math.sqrt(hd));
  }
  const m = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - m)), z = e.reduce((a, b) => a + b, 0);
  const out = new Float64Array(hd);
  e.forEach((w, j) => { const v = values(lo + j); for (let d = 0; d < hd; d++) out[d]! += (w / z) * v[d]!; });
  return out;
}

/** sample.cu's uniform(seed, b, step) (splitmix64, 24 bits). */
export function uniformTwin(seed: bigint, b: number, step: number): number {
  const mask = (1n << 64n) - 1n;
  const mix = (x: bigint) => {
    x = (x + 0x9E3779B97F4A7C15n) & mask;
    x = ((x ^ (x >> 30n)) * 0xBF58476D1CE4E5B9n) & mask;
    x = ((x ^ (x >> 27n)) * 0x94D049BB133111EBn) & mask;
    return x ^ (x >> 31n);
  };
  const h = mix(seed ^ mix((BigInt(b >>> 0) << 32n) | BigInt(step >>> 0)));
  return Number(h >> 40n) / 16777216;
}

/**
 * sample.cu's top-p rule in float64: the nucleus {l ≥ τ} with the largest τ (bisection over
 * [max − 30T, max]) holding ≥ topP of the mass; the first index in index order whose running
 * nucleus mass exceeds u·(nucleus mass).
 */
export function sampleTopPTwin(logits: Float32Array, temperature: number, topP: number, u: number): number {
  let mx = -Infinity, mi = 0;
  logits.forEach((l, i) => { if (l > mx) { mx = l; mi = i; } });
  const e = (l: number) => Math.exp((l - mx) / temperature);
  const mass = (x: number) => { let s = 0; for (const l of logits) if (l >= x) s += e(l); return s; };
  const total = mass(-Infinity);
  let thr = -Infinity;
  if (topP < 1) {
    let lo = Math.fround(mx - 30 * temperature), hi = mx;
    if (mass(hi) >= topP * total) lo = hi;
    else for (let it = 0; it < 32; it++) { const mid = Math.fround(0.5 * (lo + hi)); if (mass(mid) >= topP * total) lo = mid; else hi = mid; }
    thr = lo;
  }
  const S = mass(thr), target = u * S;
  let run = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! < thr) continue;
    run += e(logits[i]!);
    if (run > target) return i;
  }
  return mi;
}

/** What moe_topk computes, in float64 (moeTopkTwin). */
export interface MoeTopk {
  /** [M, K] experts of each row, most probable first */
  experts: Int32Array;
  /** [M, K] their probabilities renormalized over the K */
  weights: Float64Array;
  /** [M] per row, the smallest gap between neighbouring sorted logits among its K + 1 largest:
   *  how far the fp32 kernel's logits may drift before its choice or order could differ */
  margins: Float64Array;
  /** [M, E] the logits */
  logits: Float64Array;
}

/**
 * moe_topk in float64: logits = h · routerᵀ (fp16 inputs), the K largest per row (ties: the lower
 * index; softmax is monotone), w_k = exp(l_k − l_max) / Σ_top exp(l_j − l_max) (= the renormalized
 * softmax probabilities).
 */
export function moeTopkTwin(h: Uint16Array, router: Uint16Array, M: number, dim: number, E: number, K: number): MoeTopk {
  const x = halves(h), w = halves(router);
  const experts = new Int32Array(M * K), weights = new Float64Array(M * K), margins = new Float64Array(M), logits = new Float64Array(M * E);
  for (let r = 0; r < M; r++) {
    for (let e = 0; e < E; e++) {
      let s = 0;
      for (let i = 0; i < dim; i++) s += x[r * dim + i]! * w[e * dim + i]!;
      logits[r * E + e] = s;
    }
    const order = Array.from(logits.subarray(r * E, (r + 1) * E), (l, e) => ({ l, e })).sort((a, b) => b.l - a.l || a.e - b.e);
    margins[r] = Infinity;
    for (let k = 0; k < Math.min(K, E - 1); k++) margins[r] = Math.min(margins[r]!, order[k]!.l - order[k + 1]!.l);
    const top = order.slice(0, K), z = top.reduce((s, t) => s + Math.exp(t.l - top[0]!.l), 0);
    top.forEach((t, k) => { experts[r * K + k] = t.e; weights[r * K + k] = Math.exp(t.l - top[0]!.l) / z; });
  }
  return { experts, weights, margins, logits };
}

/** What moe_align computes (moeAlignTwin). */
export interface MoeGrouping {
  /** [E + 1]: expert e's entries occupy grouped slots [offsets[e], offsets[e + 1]) */
  offsets: Int32Array;
  /** [M·K] the row of each grouped slot (rows ascending within an expert) */
  perm: Int32Array;
  /** [M, K] the grouped slot of each (row, k) */
  slot: Int32Array;
  /** [E] the experts with entries, ascending, then -1 */
  active: Int32Array;
}

/** moe_align: the (row, k) entries of `experts` [M, K] grouped by expert, row-major order within one. */
export function moeAlignTwin(experts: Int32Array, M: number, E: number, K: number): MoeGrouping {
  const offsets = new Int32Array(E + 1), perm = new Int32Array(M * K), slot = new Int32Array(M * K);
  for (const e of experts) offsets[e + 1]!++;
  for (let e = 0; e < E; e++) offsets[e + 1]! += offsets[e]!;
  const next = offsets.slice(0, E);
  experts.forEach((e, i) => { const s = next[e]!++; perm[s] = Math.floor(i / K); slot[i] = s; });
  const active = new Int32Array(E).fill(-1);
  let n = 0;
  for (let e = 0; e < E; e++) if (offsets[e + 1]! > offsets[e]!) active[n++] = e;
  return { offsets, perm, slot, active };
}

/** gather_rows (moe_rows.cu): dst row s = src row perm[s], rows of rowBytes bytes. */
export function gatherRowsTwin(src: Uint8Array, perm: Int32Array, rowBytes: number): Uint8Array {
  const out = new Uint8Array(perm.length * rowBytes);
  perm.forEach((p, s) => out.set(src.subarray(p * rowBytes, (p + 1) * rowBytes), s * rowBytes));
  return out;
}

/** moe_combine (moe_rows.cu) in float64: fp16(residual[r] + Σ_k weights[r, k] · y[slot[r, k]]). */
export function moeCombineTwin(y: Uint16Array, slot: Int32Array, weights: Float32Array, residual: Uint16Array,
                               M: number, K: number, dim: number): Uint16Array {
  const yv = halves(y), rv = halves(residual), out = new Uint16Array(M * dim);
  for (let r = 0; r < M; r++)
    for (let i = 0; i < dim; i++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += weights[r * K + k]! * yv[slot[r * K + k]! * dim + i]!;
      out[r * dim + i] = f32ToF16(rv[r * dim + i]! + s);
    }
  return out;
}
