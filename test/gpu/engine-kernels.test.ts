// The engine kernels on a real GPU against their CPU twins (src/backends/cuda/twins.ts) and the CPU
// spec: embedding (exact), RMSNorm and SwiGLU (≤ 1 fp16 ulp of float64; their fused int8 outputs
// int8 outputs = quant/act-quant of their fp32 values: bit-exact on exact inputs, ±1 otherwise), RoPE + KV append (≤ 1 ulp), attention
// prefill (causal GQA, sliding window) and the fused split-KV decode (float64 reference; its int8
// rows = act-quant of its fp32 rows), sampling (argmax
// exact; top-p = its twin), and the weight kernels bit-exact with quant/rtn, quant/integer-scale
// and gpu/repack. Fresh seeded inputs; outputs poisoned (0xff bytes) before each launch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f16ToF32, f32ArrayToF16 } from '../../src/core/dtype.ts';
import { Rng } from '../../src/core/rng.ts';
import { Gpu, type DeviceBuffer } from '../../src/gpu/runtime.ts';
import { EngineKernels } from '../../src/backends/cuda/kernels.ts';
import {
  attentionTwin, halves, rmsnormF32Twin, rmsnormTwin, ropeTwin, sampleTopPTwin, swigluF32Twin, swigluTwin, uniformTwin,
} from '../../src/backends/cuda/twins.ts';
import { quantizeActivations } from '../../src/quant/act-quant.ts';
import { quantizeRtn } from '../../src/quant/rtn.ts';
import { computeIntegerScales } from '../../src/quant/integer-scale.ts';
import { packInt4 } from '../../src/quant/pack-int4.ts';
import { packFloatScales, packHalfScales, packIntScales, repackWeights } from '../../src/gpu/repack.ts';
import { ropeTables } from '../../src/model/rope.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;
/** One fp16 rounding of the float64 result, plus the kernels' fp32 arithmetic: 1 ulp. */
const ulpOk = (got: number, want: number) => Math.abs(f16ToF32(got) - f16ToF32(want)) <= 2 ** -10 * Math.abs(f16ToF32(want)) + 2 ** -24;

let ctx: { gpu: Gpu; k: EngineKernels } | undefined;
const setup = () => (ctx ??= (() => { const gpu = Gpu.open(); return { gpu, k: new EngineKernels(gpu) }; })());
const poisoned = (gpu: Gpu, bytes: number): DeviceBuffer => { const b = gpu.alloc(bytes); gpu.memset(b, 0xff); return b; };
const f16 = (rng: Rng, n: number, std = 1) => f32ArrayToF16(rng.normals(n, std));

test('embed_rows: exact gather; out-of-range ids give zero rows', { skip }, () => {
  const { gpu, k } = setup();
  const rng = new Rng(1), V = 300, dim = 136;
  const table = f16(rng, V * dim), ids = Int32Array.from({ length: 9 }, (_, i) => (i === 4 ? V + 5 : rng.int(0, V - 1)));
  const dT = gpu.upload(table), dI = gpu.upload(ids), out = poisoned(gpu, ids.length * dim * 2);
  k.embed(dT, dI, out, ids.length, V, dim);
  const got = gpu.download(out, new Uint16Array(ids.length * dim));
  ids.forEach((id, r) => assert.deepEqual(got.subarray(r * dim, (r + 1) * dim), id < V ? table.subarray(id * dim, (id + 1) * dim) : new Uint16Array(dim)));
  for (const b of [dT, dI, out]) b.free();
});

/** act-quant of fp32 rows vs the GPU's int8: exact when the inputs are, else ±1 on a few elements (the fp32 values differ in the last bits). */
function checkQ8(label: string, q: Int8Array, sx: Float32Array, ref: { q: Int8Array; scale: Float32Array }, exact: boolean): void {
  if (exact) {
    assert.deepEqual(q, ref.q, `${label}: int8`);
    assert.deepEqual(sx, ref.scale, `${label}: scales`);
    return;
  }
  let off = 0;
  q.forEach((v, i) => { const d = Math.abs(v - ref.q[i]!); assert.ok(d <= 1, `${label} [${i}]: ${v} vs ${ref.q[i]}`); off += d; });
  assert.ok(off <= q.length * 0.01, `${label}: ${off} of ${q.length} values one step off`);
  sx.forEach((v, i) => assert.ok(Math.abs(v - ref.scale[i]!) <= 2 ** -20 * ref.scale[i]!, `${label}: scale ${i}`));
}

test('rmsnorm f16 ≤ 1 ulp of float64 (with a row gather); rmsnorm q8 = act-quant of its fp32 values (bit-exact where they are exact)', { skip }, () => {
  const { gpu, k } = setup();
  const rng = new Rng(2);
  for (const dim of [512, 4096, 5120]) {
    const rows = 7, x = f16(rng, rows * dim, 3), w = f16(rng, dim, 0.3);
    const gather = Int32Array.from([6, 0, 3]);
    const dx = gpu.upload(x), dw = gpu.upload(w), dg = gpu.upload(gather);
    const o16 = poisoned(gpu, rows * dim * 2), q = poisoned(gpu, rows * dim), sx = poisoned(gpu, rows * 4), og = poisoned(gpu, 3 * dim * 2);
    try {
      k.rmsnorm(dx, dw, rows, dim, 1e-5, { f16: o16 });
      k.rmsnorm(dx, dw, rows, dim, 1e-5, { q, sx });
      k.rmsnorm(dx, dw, 3, dim, 1e-5, { f16: og }, dg);
      const got = gpu.download(o16, new Uint16Array(rows * dim)), want = rmsnormTwin(x, w, rows, dim, 1e-5);
      got.forEach((h, i) => assert.ok(ulpOk(h, want[i]!), `dim ${dim} [${i}]: ${f16ToF32(h)} vs ${f16ToF32(want[i]!)}`));
      const gathered = gpu.download(og, new Uint16Array(3 * dim));
      gather.forEach((src, r) => assert.deepEqual(gathered.subarray(r * dim, (r + 1) * dim), got.subarray(src * dim, (src + 1) * dim)));
      checkQ8(`rmsnorm q8 dim ${dim}`, gpu.download(q, new Int8Array(rows * dim)), gpu.download(sx, new Float32Array(rows)),
        quantizeActivations(rmsnormF32Twin(x, w, rows, dim, 1e-5), rows, dim), false);
      // rows whose mean square is exactly 4 (5/8 of the values ±1, 3/8 ±3) and eps = 0: 1/rms = 0.5
      // exactly, so the fp32 values w·(x·0.5) are exact and the int8 must match act-quant bit for bit
      const xe = new Uint16Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        const mags: number[] = Array.from({ length: dim }, (_, i) => (i % 8 < 5 ? 1 : 3));
        for (let i = dim - 1; i > 0; i--) { const j = rng.int(0, i); [mags[i], mags[j]] = [mags[j]!, mags[i]!]; }
        mags.forEach((m, i) => { xe[r * dim + i] = f32ArrayToF16(Float32Array.of(rng.next() < 0.5 ? -m : m))[0]!; });
      }
      gpu.copyToDevice(dx, xe);
      k.rmsnorm(dx, dw, rows, dim, 0, { q, sx });
      const exact = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) for (let i = 0; i < dim; i++) exact[r * dim + i] = Math.fround(f16ToF32(w[i]!) * (f16ToF32(xe[r * dim + i]!) * 0.5));
      checkQ8(`rmsnorm q8 exact dim ${dim}`, gpu.download(q, new Int8Array(rows * dim)), gpu.download(sx, new Float32Array(rows)),
        quantizeActivations(exact, rows, dim), true);
    } finally {
      for (const b of [dx, dw, dg, o16, q, sx, og]) b.free();
    }
  }
});

test('swiglu f16 ≤ 1 ulp of float64; swiglu q8 = act-quant of its fp32 values (±1 where the last bits differ)', { skip }, () => {
  const { gpu, k } = setup();
  const rng = new Rng(3);
  for (const H of [1536, 11008, 14336]) {
    const rows = 5, gu = f16(rng, rows * 2 * H, 2);
    const dgu = gpu.upload(gu), o16 = poisoned(gpu, rows * H * 2), q = poisoned(gpu, rows * H), sx = poisoned(gpu, rows * 4);
    k.swiglu(dgu, rows, H, { f16: o16 });
    k.swiglu(dgu, rows, H, { q, sx });
    const got = gpu.download(o16, new Uint16Array(rows * H)), want = swigluTwin(gu, rows, H);
    got.forEach((h, i) => assert.ok(ulpOk(h, want[i]!), `H ${H} [${i}]: ${f16ToF32(h)} vs ${f16ToF32(want[i]!)}`));
    checkQ8(`swiglu q8 H ${H}`, gpu.download(q, new Int8Array(rows * H)), gpu.download(sx, new Float32Array(rows)),
      quantizeActivations(swigluF32Twin(gu, rows, H), rows, H), false);
    for (const b of [dgu, o16, q, sx]) b.free();
  }
});

test('quantize_f32 = act-quant of fp32 rows, bit for bit', { skip }, () => {
  const { gpu, k } = setup();
  const rng = new Rng(8);
  for (const dim of [512, 4096, 5120]) {
    const rows = 6, x = rng.normals(rows * dim, 1.5);
    x.fill(0, 0, dim);  // an all-zero row: scale 0, q 0
    const dx = gpu.upload(x), q = poisoned(gpu, rows * dim), sx = poisoned(gpu, rows * 4);
    try {
      k.quantizeF32(dx, q, sx, rows, dim);
      checkQ8(`quantize_f32 dim ${dim}`, gpu.download(q, new Int8Array(rows * dim)), gpu.download(sx, new Float32Array(rows)), quantizeActivations(x, rows, dim), true);
    } finally {
      for (const b of [dx, q, sx]) b.free();
    }
  }
});

interface AttnCase {
  nH: number; nKv: number; hd: number; maxSeq: number; seqs: { pos0: number; T: number; slot: number }[]; window: number;
  /** q|k|v bias (Qwen2) and the RoPE pair layout (default: none, rotate_half). */
  bias?: boolean; layout?: 'half' | 'interleaved';
}
/** How a decode step's attention (attention_decode.cu) is launched: KV splits and the output format. */
interface DecodeRun { splits: number; out: 'f16' | 'f32' | 'q8' }

/**
 * RoPE + KV append, then attention: rope_kv and the prefill kernel, or the fused decode kernel
 * (RoPE and the append inside; every sequence one token) when `decode` is given. Against the twins:
 * rotated k (and prefill's q) ≤ 1 ulp, v exact (+ bias: one rounding), attention within 2e-3 of
 * max |v|, a decode int8 output = act-quant of its own fp32 rows, bit for bit.
 */
function runAttention(c: AttnCase, rng: Rng, decode?: DecodeRun): void {
  const { gpu, k } = setup();
  const { nH, nKv, hd, maxSeq } = c, qkvDim = (nH + 2 * nKv) * hd, slots = Math.max(...c.seqs.map((s) => s.slot)) + 1;
  if (decode) assert.ok(c.seqs.every((s) => s.T === 1), 'a decode step has one token per sequence');
  const rows = c.seqs.reduce((n, s) => n + s.T, 0), B = c.seqs.length;
  const starts: number[] = [];
  let r0 = 0;
  for (const s of c.seqs) { starts.push(r0); r0 += s.T; }
  const rowSeq = c.seqs.flatMap((s, i) => Array(s.T).fill(i) as number[]);
  const qkv = f16(rng, rows * qkvDim);
  const cacheElems = slots * nKv * maxSeq * hd;
  // the cache before the step: random history at positions < pos0 (what earlier steps wrote)
  const kHost = f16(rng, cacheElems), vHost = f16(rng, cacheElems);
  const layout = c.layout ?? 'half';
  const rope = ropeTables({ theta: 10000, layout }, hd, maxSeq);
  const biasHost = c.bias ? f16(rng, qkvDim, 0.5) : undefined;
  const splits = decode?.splits ?? 1;
  const d = {
    qkv: gpu.upload(qkv), cos: gpu.upload(rope.cos), sin: gpu.upload(rope.sin), rowSeq: gpu.upload(Int32Array.from(rowSeq)),
    seqStart: gpu.upload(Int32Array.from(starts)), seqLen: gpu.upload(Int32Array.from(c.seqs.map((s) => s.T))),
    seqPos0: gpu.upload(Int32Array.from(c.seqs.map((s) => s.pos0))), seqSlot: gpu.upload(Int32Array.from(c.seqs.map((s) => s.slot))),
    kcache: gpu.upload(kHost), vcache: gpu.upload(vHost), out: poisoned(gpu, rows * nH * hd * 2), out32: poisoned(gpu, rows * nH * hd * 4),
    q: poisoned(gpu, rows * nH * hd), sx: poisoned(gpu, rows * 4),
    wsO: poisoned(gpu, Math.max(16, B * nH * splits * hd * 4)), wsMl: poisoned(gpu, Math.max(16, B * nH * splits * 8)),
    amax: poisoned(gpu, B * nKv * 4), counters: gpu.alloc((B * nKv + B) * 4), bias: gpu.upload(biasHost ?? new Uint16Array(8)),
  };
  gpu.memset(d.counters, 0);
  // what both kernels read (the outputs are passed one by one: an extra one would change the format)
  const inputs = { qkv: d.qkv, kcache: d.kcache, vcache: d.vcache, seqStart: d.seqStart, seqPos0: d.seqPos0, seqSlot: d.seqSlot };
  const ropeArgs = { cos: d.cos, sin: d.sin, interleaved: layout === 'interleaved', ...(biasHost ? { bias: d.bias } : {}) };
  try {
    if (!decode) k.ropeKv({ ...inputs, ...ropeArgs, rowSeq: d.rowSeq, rows, nH, nKv, hd, maxSeq });
    const rep = nH / nKv;
    let q8: { q: Int8Array; sx: Float32Array } | undefined;
    if (decode) {
      const launch = () => k.attentionDecode({ ...inputs, ...ropeArgs, wsO: d.wsO, wsMl: d.wsMl, amax: d.amax, counters: d.counters, B, nH, nKv, hd, maxSeq,
        window: c.window, splits,
        ...(decode.out === 'f16' ? { out: d.out } : decode.out === 'f32' ? { out32: d.out32 } : { out32: d.out32, q8: { q: d.q, sx: d.sx } }) });
      launch();
      if (decode.out === 'q8') {
        q8 = { q: gpu.download(d.q, new Int8Array(rows * nH * hd)), sx: gpu.download(d.sx, new Float32Array(rows)) };
        launch();  // a replay (the counters must have returned to zero) gives the same rows
        assert.deepEqual(gpu.download(d.q, new Int8Array(rows * nH * hd)), q8.q, 'decode int8 rows of a second launch');
      }
      assert.deepEqual(gpu.download(d.counters, new Uint32Array(B * nKv + B)), new Uint32Array(B * nKv + B), 'counters left zero');
    } else {
      k.attention({ ...inputs, out: d.out, seqLen: d.seqLen, seqs: B, maxRowsPerSeq: Math.max(...c.seqs.map((s) => s.T)) * rep, nH, nKv, hd, maxSeq, window: c.window });
    }
    const qkvGot = gpu.download(d.qkv, new Uint16Array(rows * qkvDim));
    const kGot = gpu.download(d.kcache, new Uint16Array(cacheElems)), vGot = gpu.download(d.vcache, new Uint16Array(cacheElems));
    const f32Out = decode && decode.out !== 'f16';
    const out = f32Out ? gpu.download(d.out32, new Float32Array(rows * nH * hd)) : Float32Array.from(gpu.download(d.out, new Uint16Array(rows * nH * hd)), f16ToF32);
    if (q8) checkQ8(`decode int8 splits ${splits}`, q8.q, q8.sx, quantizeActivations(out, rows, nH * hd), true);
    const at = (slot: number, g: number, p: number) => ((slot * nKv + g) * maxSeq + p) * hd;
    /** The twin's rotation of head h (q or k) of qkv row `row` at position p, bias added (fp16 bits). */
    const rotated = (row: number, h: number, p: number) => {
      const x = halves(qkv.subarray(row * qkvDim + h * hd, row * qkvDim + (h + 1) * hd));
      if (biasHost) { const b = halves(biasHost.subarray(h * hd, (h + 1) * hd)); x.forEach((v, j) => { x[j] = v + b[j]!; }); }
      return ropeTwin(x, rope.cos, rope.sin, p, layout);
    };
    c.seqs.forEach((s, i) => {
      for (let t = 0; t < s.T; t++) {
        const row = starts[i]! + t, p = s.pos0 + t;
        for (let h = 0; h < nH + nKv; h++) {
          const got = h < nH ? qkvGot.subarray(row * qkvDim + h * hd, row * qkvDim + (h + 1) * hd) : kGot.subarray(at(s.slot, h - nH, p), at(s.slot, h - nH, p) + hd);
          if (decode && h < nH) {  // the fused kernel rotates q for itself and leaves qkv as it was
            assert.deepEqual(got, qkv.subarray(row * qkvDim + h * hd, row * qkvDim + (h + 1) * hd), `decode leaves q of seq ${i} head ${h}`);
            continue;
          }
          const want = rotated(row, h, p);
          got.forEach((v, j) => assert.ok(ulpOk(v, want[j]!), `rope seq ${i} t ${t} head ${h} [${j}]`));
        }
        for (let g = 0; g < nKv; g++) {
          const v0 = row * qkvDim + (nH + nKv + g) * hd;
          const want = biasHost ? Uint16Array.from(qkv.subarray(v0, v0 + hd), (v, j) => f32ArrayToF16(Float32Array.of(f16ToF32(v) + f16ToF32(biasHost[(nH + nKv + g) * hd + j]!)))[0]!)
            : qkv.subarray(v0, v0 + hd);
          assert.deepEqual(vGot.subarray(at(s.slot, g, p), at(s.slot, g, p) + hd), want, `v append seq ${i} t ${t}`);
        }
      }
    });
    // attention from the cache the GPU wrote (history + this step), per (token, head)
    let maxV = 0;
    for (const v of halves(vGot)) maxV = Math.max(maxV, Math.abs(v));
    const tol = 2e-3 * maxV, label = decode ? `decode ${decode.out} splits ${splits}` : 'prefill';
    c.seqs.forEach((s, i) => {
      for (let t = 0; t < s.T; t++) {
        const row = starts[i]! + t, p = s.pos0 + t;
        for (let h = 0; h < nH; h++) {
          const g = Math.floor(h / rep);
          const q = decode ? halves(rotated(row, h, p)) : halves(qkvGot.subarray(row * qkvDim + h * hd, row * qkvDim + (h + 1) * hd));
          const ref = attentionTwin(q, (key) => halves(kGot.subarray(at(s.slot, g, key), at(s.slot, g, key) + hd)),
            (key) => halves(vGot.subarray(at(s.slot, g, key), at(s.slot, g, key) + hd)), p, c.window);
          for (let j = 0; j < hd; j++) {
            const got = out[(row * nH + h) * hd + j]!;
            assert.ok(Math.abs(got - ref[j]!) <= tol, `attention ${label} hd ${hd} seq ${i} t ${t} head ${h} [${j}]: ${got} vs ${ref[j]} (tol ${tol})`);
          }
        }
      }
    });
  } finally {
    for (const b of Object.values(d)) b.free();
  }
}

test('rope_kv + attention prefill: causal GQA, mixed lengths and offsets, hd 64 and 128, sliding window, bias + interleaved RoPE', { skip, timeout: 300_000 }, () => {
  const rng = new Rng(4);
  runAttention({ nH: 8, nKv: 4, hd: 64, maxSeq: 300, window: 0, seqs: [{ pos0: 0, T: 130, slot: 1 }, { pos0: 37, T: 5, slot: 0 }, { pos0: 0, T: 1, slot: 2 }] }, rng);
  runAttention({ nH: 32, nKv: 8, hd: 128, maxSeq: 200, window: 0, seqs: [{ pos0: 0, T: 77, slot: 0 }, { pos0: 64, T: 70, slot: 1 }] }, rng);
  runAttention({ nH: 4, nKv: 4, hd: 128, maxSeq: 400, window: 50, seqs: [{ pos0: 100, T: 90, slot: 0 }] }, rng);
  runAttention({ nH: 8, nKv: 4, hd: 64, maxSeq: 200, window: 0, bias: true, layout: 'interleaved', seqs: [{ pos0: 3, T: 40, slot: 0 }] }, rng);
});

test('attention decode (one kernel: RoPE + KV append, split-KV 1/2/3/8/40, merge, int8 rows): batch of different lengths, GQA 2/4/16, MHA, sliding window, bias, interleaved RoPE, fp16/fp32/int8 out', { skip, timeout: 300_000 }, () => {
  const rng = new Rng(5);
  for (const splits of [1, 3, 8, 40]) {
    const out = (['f16', 'f32', 'q8'] as const)[splits % 3]!;
    // GQA 32/8, hd 128: lengths 651, 1, 130 (a split past the last tile has no work; 1 key; the p0 tile)
    runAttention({ nH: 32, nKv: 8, hd: 128, maxSeq: 700, window: 0, seqs: [{ pos0: 650, T: 1, slot: 2 }, { pos0: 0, T: 1, slot: 0 }, { pos0: 129, T: 1, slot: 1 }] }, rng, { splits, out });
    runAttention({ nH: 8, nKv: 8, hd: 64, maxSeq: 520, window: 0, seqs: [{ pos0: 511, T: 1, slot: 0 }, { pos0: 63, T: 1, slot: 1 }] }, rng, { splits, out: 'q8' });
  }
  runAttention({ nH: 16, nKv: 1, hd: 128, maxSeq: 300, window: 0, seqs: [{ pos0: 255, T: 1, slot: 0 }, { pos0: 64, T: 1, slot: 1 }] }, rng, { splits: 2, out: 'q8' });
  runAttention({ nH: 8, nKv: 2, hd: 64, maxSeq: 900, window: 100, seqs: [{ pos0: 800, T: 1, slot: 0 }, { pos0: 70, T: 1, slot: 1 }] }, rng, { splits: 3, out: 'f32' });
  // Qwen2's q|k|v bias, llama2.c's interleaved pairs (RoPE fused in the decode kernel)
  runAttention({ nH: 8, nKv: 4, hd: 128, maxSeq: 300, window: 0, bias: true, layout: 'interleaved', seqs: [{ pos0: 200, T: 1, slot: 1 }, { pos0: 5, T: 1, slot: 0 }] }, rng, { splits: 2, out: 'q8' });
  runAttention({ nH: 8, nKv: 4, hd: 64, maxSeq: 300, window: 0, bias: true, seqs: [{ pos0: 130, T: 1, slot: 0 }] }, rng, { splits: 1, out: 'f16' });
});

test('sampling: argmax = first maximum; top-p = its float64 twin; advance_step', { skip }, () => {
  const { gpu, k } = setup();
  const rng = new Rng(6), B = 24, V = 5000;
  const logits = new Float32Array(B * V);
  for (let b = 0; b < B; b++) for (let i = 0; i < V; i++) logits[b * V + i] = Math.fround(rng.normal() * 2 + (i % 97 === 0 ? 3 : 0));
  logits[3 * V + 17] = logits[3 * V + 4000] = 99;  // a tie: the lower index wins
  const dl = gpu.upload(logits), ids = poisoned(gpu, B * 4), hist = poisoned(gpu, 4 * B * 4), step = gpu.upload(Int32Array.from([2]));
  try {
    k.sample(dl, B, V, ids, hist, step, { temperature: 0, topP: 1, seed: 0 });
    const got = gpu.download(ids, new Int32Array(B));
    for (let b = 0; b < B; b++) {
      const row = logits.subarray(b * V, (b + 1) * V);
      let best = 0;
      for (let i = 1; i < V; i++) if (row[i]! > row[best]!) best = i;
      assert.equal(got[b], best, `argmax row ${b}`);
    }
    assert.deepEqual(gpu.download(hist, new Int32Array(4 * B)).subarray(2 * B, 3 * B), got, 'history row = step');
    let agree = 0, total = 0;
    for (const [T, P] of [[0.8, 0.9], [1.5, 0.5], [1, 1]] as const) {
      k.sample(dl, B, V, ids, hist, step, { temperature: T, topP: P, seed: 1234 });
      const s = gpu.download(ids, new Int32Array(B));
      for (let b = 0; b < B; b++) {
        const want = sampleTopPTwin(logits.subarray(b * V, (b + 1) * V), T, P, uniformTwin(1234n, b, 2));
        total++;
        if (s[b] === want) agree++;
      }
    }
    // fp32 sums on the GPU vs float64 in the twin can move a pick only at a boundary of the CDF
    assert.ok(agree >= total - 1, `top-p agrees with its twin on ${agree} of ${total} rows`);
    const pos = gpu.upload(Int32Array.from({ length: B }, (_, b) => b * 3));
    k.advance(pos, step, B);
    assert.deepEqual(gpu.download(pos, new Int32Array(B)), Int32Array.from({ length: B }, (_, b) => b * 3 + 1));
    assert.equal(gpu.download(step, new Int32Array(1))[0], 3);
    pos.free();
  } finally {
    for (const b of [dl, ids, hist, step]) b.free();
  }
});

test('weights: GPU RTN, integer scales, repack and scale layouts bit-exact with the CPU spec; non-finite weights refused', { skip, timeout: 300_000 }, () => {
  const { gpu, k } = setup();
  const rng = new Rng(7);
  for (const [N, K, G] of [[384, 1024, 128], [256, 11008, 128], [136, 512, 64], [128, 2048, 2048]] as const) {
    const w16 = f16(rng, N * K, 0.02);
    for (let i = 0; i < 50; i++) w16[rng.int(0, N * K - 1)] = f32ArrayToF16(Float32Array.of(rng.normal() * 0.3))[0]!;  // outliers
    const wf = Float32Array.from(w16, f16ToF32);
    const qw = quantizeRtn(wf, N, K, { group: G === K ? -1 : G });
    const is = computeIntegerScales(qw, 'auto', 'w');
    const groups = K / G, canon = packInt4(qw.q, N, K);
    const dw = gpu.upload(w16), dq = poisoned(gpu, N * K / 2), ds = poisoned(gpu, N * groups * 2), bad = gpu.alloc(4);
    const di = poisoned(gpu, N * groups * 4), dsh = poisoned(gpu, N), rp8 = poisoned(gpu, N * K / 2), rp16 = poisoned(gpu, N * K / 2);
    const ti = poisoned(gpu, N * groups * 4), tf = poisoned(gpu, N * groups * 4), th = poisoned(gpu, N * groups * 2);
    try {
      gpu.memset(bad, 0);
      k.rtnQuantize(dw, dq, ds, bad, N, K, G);
      k.integerScales(ds, dq, di, dsh, bad, N, K, G);
      k.repack(dq, rp8, N, K, 'w4a8');
      k.repack(dq, rp16, N, K, 'w4a16');
      k.transposeScales(di, ti, N, groups, 'i32');
      k.transposeScales(ds, tf, N, groups, 'f16->f32');
      k.transposeScales(ds, th, N, groups, 'f16');
      gpu.sync();
      const label = `N ${N} K ${K} G ${G}`;
      assert.equal(gpu.download(bad, new Int32Array(1))[0], 0, label);
      assert.deepEqual(gpu.download(dq, new Uint8Array(N * K / 2)), canon, `${label}: packed int4`);
      assert.deepEqual(Float32Array.from(gpu.download(ds, new Uint16Array(N * groups)), f16ToF32), qw.scales, `${label}: scales`);
      assert.deepEqual(gpu.download(di, new Int32Array(N * groups)), is.iscales, `${label}: integer scales`);
      assert.deepEqual(gpu.download(dsh, new Int8Array(N)), is.shift, `${label}: shifts`);
      assert.deepEqual(gpu.download(rp8, new Uint8Array(N * K / 2)), repackWeights(canon, N, K, 'w4a8'), `${label}: repack w4a8`);
      assert.deepEqual(gpu.download(rp16, new Uint8Array(N * K / 2)), repackWeights(canon, N, K, 'w4a16'), `${label}: repack w4a16`);
      assert.deepEqual(gpu.download(ti, new Int32Array(N * groups)), packIntScales(is.iscales, N, groups));
      assert.deepEqual(gpu.download(tf, new Float32Array(N * groups)), packFloatScales(qw.scales, N, groups));
      assert.deepEqual(gpu.download(th, new Uint16Array(N * groups)), packHalfScales(qw.scales, N, groups));
      // a NaN weight: the row is reported
      const nanRow = 5;
      gpu.copyToDevice(dw, Uint16Array.of(0x7e00), (nanRow * K + 3) * 2);
      k.rtnQuantize(dw, dq, ds, bad, N, K, G);
      gpu.sync();
      assert.equal(gpu.download(bad, new Int32Array(1))[0], nanRow + 1);
    } finally {
      for (const b of [dw, dq, ds, bad, di, dsh, rp8, rp16, ti, tf, th]) b.free();
    }
  }
});
