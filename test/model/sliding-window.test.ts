// Mistral's sliding window in the CPU engine: a query at position p attends to keys in
// (p - window, p]. Checked on the tiny random model against an independent float64 forward with
// that mask written here (prefill in one chunk, in blocks of 3 query rows, chunk + decode, and in a
// batch), and a window wider than the sequence changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardBatch, Session, type Model } from '../../src/model/llama.ts';
import { referenceLogits, tinyModel, type Raw } from './tiny-model.ts';

const TOL = 2e-4; // absolute on logits of magnitude ~1: fp32 engine vs float64 reference (as engine.test.ts)
const TOKENS = [1, 5, 39, 7, 7, 0, 22, 13, 30, 2, 17, 8, 3, 21];

/** Float64 forward of every position with sliding-window attention: keys (t - window, t]. */
function windowedReference(r: Raw, tokens: number[], window: number): number[][] {
  const c = r.config, d = c.dim, hd = c.headDim, kvDim = c.nKvHeads * hd;
  const matvec = (w: Float32Array, x: number[], rows: number, b?: Float32Array) => {
    const y: number[] = [];
    for (let n = 0; n < rows; n++) { let s = b ? b[n]! : 0; for (let k = 0; k < x.length; k++) s += w[n * x.length + k]! * x[k]!; y.push(s); }
    return y;
  };
  const rmsNorm = (x: number[], w: Float32Array) => { let ss = 0; for (const v of x) ss += v * v; const inv = 1 / Math.sqrt(ss / x.length + c.normEps); return x.map((v, i) => v * inv * w[i]!); };
  const rotate = (v: number[], pos: number) => {
    const out = v.slice();
    for (let base = 0; base < v.length; base += hd)
      for (let i = 0; i < hd / 2; i++) {
        const angle = pos / Math.pow(c.rope.theta, (2 * i) / hd);
        const a = c.rope.layout === 'half' ? base + i : base + 2 * i, b = c.rope.layout === 'half' ? base + i + hd / 2 : base + 2 * i + 1;
        out[a] = v[a]! * Math.cos(angle) - v[b]! * Math.sin(angle);
        out[b] = v[a]! * Math.sin(angle) + v[b]! * Math.cos(angle);
      }
    return out;
  };
  let xs = tokens.map((id) => Array.from(r.emb.subarray(id * d, (id + 1) * d), Number));
  for (const L of r.layers) {
    const hs = xs.map((x) => rmsNorm(x, L.an));
    const qs = hs.map((h, t) => rotate(matvec(L.wq, h, c.nHeads * hd, L.bq), t));
    const ks = hs.map((h, t) => rotate(matvec(L.wk, h, kvDim, L.bk), t));
    const vs = hs.map((h) => matvec(L.wv, h, kvDim, L.bv));
    xs = xs.map((x, t) => {
      const att: number[] = [];
      const from = Math.max(0, t - window + 1);
      for (let h = 0; h < c.nHeads; h++) {
        const g = Math.floor((h * c.nKvHeads) / c.nHeads);
        const scores: number[] = [];
        for (let s = from; s <= t; s++) { let dot = 0; for (let i = 0; i < hd; i++) dot += qs[t]![h * hd + i]! * ks[s]![g * hd + i]!; scores.push(dot / Math.sqrt(hd)); }
        const max = Math.max(...scores), e = scores.map((v) => Math.exp(v - max)), z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hd; i++) { let acc = 0; e.forEach((p, j) => { acc += (p / z) * vs[from + j]![g * hd + i]!; }); att.push(acc); }
      }
      return matvec(L.wo, att, d).map((v, i) => v + x[i]!);
    });
    xs = xs.map((x) => {
      const h = rmsNorm(x, L.fn), gate = matvec(L.w1, h, c.hiddenDim), up = matvec(L.w3, h, c.hiddenDim);
      const act = gate.map((v, i) => (v / (1 + Math.exp(-v))) * up[i]!);
      return matvec(L.w2, act, d).map((v, i) => v + x[i]!);
    });
  }
  return xs.map((x) => matvec(r.head, rmsNorm(x, r.final), c.vocabSize));
}

function withWindow(model: Model, window: number): Model {
  return { ...model, config: { ...model.config, slidingWindow: window } };
}

function assertClose(got: Float32Array, want: number[], what: string): void {
  want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) <= TOL, `${what} logit ${i}: ${got[i]} vs ${w}`));
}

test('the windowed float64 reference with an unbounded window is the tiny model\'s reference', () => {
  const { raw } = tinyModel('interleaved', true);
  const a = windowedReference(raw, TOKENS, Infinity), b = referenceLogits(raw, TOKENS);
  a.forEach((row, t) => row.forEach((v, i) => assert.ok(Math.abs(v - b[t]![i]!) < 1e-9, `t=${t} i=${i}`)));
});

for (const [layout, bias, window] of [['half', false, 4], ['interleaved', false, 3], ['half', true, 5], ['half', false, 1]] as const) {
  test(`sliding window ${window} (rope ${layout}${bias ? ', biases' : ''}) vs masked float64 reference`, () => {
    const { model: base, raw } = tinyModel(layout, bias);
    const model = withWindow(base, window);
    const ref = windowedReference(raw, TOKENS, window);
    const V = model.config.vocabSize;
    // it matters: the unwindowed reference differs at positions past the window
    const full = referenceLogits(raw, TOKENS);
    assert.ok(Math.abs(full[TOKENS.length - 1]![0]! - ref[TOKENS.length - 1]![0]!) > 10 * TOL);
    for (const attentionBlock of [undefined, 3, 2]) {
      const all = new Session(model, attentionBlock ? { attentionBlock } : {}).forward(TOKENS, { allLogits: true });
      ref.forEach((row, t) => assertClose(all.subarray(t * V, (t + 1) * V), row, `prefill block ${attentionBlock ?? 'default'} t=${t}`));
    }
    // a chunk of 6, then one token at a time
    const s = new Session(model);
    assertClose(s.forward(TOKENS.slice(0, 6)), ref[5]!, 'chunk');
    for (let t = 6; t < TOKENS.length; t++) assertClose(s.forward([TOKENS[t]!]), ref[t]!, `decode t=${t}`);
    // in a batch next to a sequence at another position
    const a = new Session(model), b = new Session(model);
    a.forward(TOKENS.slice(0, 9));
    const [la, lb] = forwardBatch([a, b], [TOKENS.slice(9), TOKENS.slice(0, 7)], { allLogits: true });
    for (let t = 9; t < TOKENS.length; t++) assertClose(la!.subarray((t - 9) * V, (t - 8) * V), ref[t]!, `batch seq a t=${t}`);
    for (let t = 0; t < 7; t++) assertClose(lb!.subarray(t * V, (t + 1) * V), ref[t]!, `batch seq b t=${t}`);
  });
}

test('a window at least as long as the sequence changes nothing (bit for bit); a bad window is refused', () => {
  const { model } = tinyModel('half', false);
  const plain = new Session(model).forward(TOKENS, { allLogits: true });
  assert.deepEqual(new Session(withWindow(model, TOKENS.length)).forward(TOKENS, { allLogits: true }), plain);
  assert.throws(() => new Session(withWindow(model, 0)), /sliding window must be a positive integer/);
});
