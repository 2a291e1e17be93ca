// The CUDA GPTQ (src/gpu/gptq/solver.ts, fp32) against the CPU gptqQuantize (float64) on seeded
// random layers with heavy-tailed weights, outlier input channels and a dead input: the same int4
// values on at least MIN_SAME_Q of the weights, the GPTQ objective tr((W−Ŵ)H(W−Ŵ)ᵀ) within
// OBJECTIVE_REL_TOL of the CPU's (and below RTN's: GPTQ actually ran), the factor U within U_REL_TOL;
// natural order and act-order (static groups: identical scales), K not a multiple of the block, a
// group spanning blocks, per channel, fp16 and fp32 inputs; one-line errors; and the calibration
// pipeline with the CUDA solver and layer forward against the CPU pipeline (the forward's ops one by
// one: calib-forward.test.ts). Skipped without a GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f32ArrayToF16 } from '../../src/core/dtype.ts';
import { IntscaleError } from '../../src/core/errors.ts';
import { Rng } from '../../src/core/rng.ts';
import { Gpu } from '../../src/gpu/runtime.ts';
import { GpuGptq } from '../../src/gpu/gptq/solver.ts';
import type { Model } from '../../src/model/llama.ts';
import { calibrateModel, type MethodOptions } from '../../src/quant/calibrate.ts';
import { gptqQuantize, prepareHessian } from '../../src/quant/gptq.ts';
import type { GptqDevice } from '../../src/quant/gptq-device.ts';
import { InputStats } from '../../src/quant/hessian.ts';
import { quantizeRtn } from '../../src/quant/rtn.ts';
import { CASE_ROWS, CASES, DEAD, inputs, MIN_SAME_Q, objective, OBJECTIVE_REL_TOL, PIPELINE_MIN_SAME_Q, sameFraction, TIE, U_REL_TOL, weights } from './gptq-fixtures.ts';
import { smallLlama } from '../quant/small-llama.ts';


const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

test('CUDA GPTQ matches the CPU GPTQ: int4 values, scales, objective, factor', { skip }, (t) => {
  const gpu = Gpu.open(), solver = new GpuGptq(gpu);
  try {
    CASES.forEach((c, ci) => {
      const rng = new Rng(100 + ci), rows = CASE_ROWS, dead = DEAD;
      const x = inputs(rng, rows, c.K, dead), w = weights(rng, c.N, c.K);
      const stats = new InputStats(c.K, true, false);
      stats.add(x, rows);
      const h = stats.hessian();
      const ph = prepareHessian(h, c.K, { actOrder: c.actOrder });
      const opts = { group: c.group, actOrder: c.actOrder, ...(c.blockSize ? { blockSize: c.blockSize } : {}) };
      const cpu = gptqQuantize(w, c.N, c.K, ph, opts);

      // the Gram matrix in two GEMMs (the second accumulates), from fp16 or fp32 rows on the device
      const xd = gpu.upload(c.input === 'f16' ? f32ArrayToF16(x) : x), gram = gpu.alloc(c.K * c.K * 4), split = 300;
      solver.gramInto(gram, xd, split, c.K, c.input, false);
      solver.gramInto(gram, xd.ptr + BigInt(split * c.K * (c.input === 'f16' ? 2 : 4)), rows - split, c.K, c.input, true);
      const f = solver.factor(gram, rows, c.K, { actOrder: c.actOrder });
      xd.free(); gram.free();
      try {
        assert.deepEqual([...f.dead], [...ph.dead], `${c.name}: dead inputs`);
        // act-order from the fp32 diagonal: only near-ties (relative gap < TIE) may sort differently
        let swapped = 0;
        f.perm.forEach((a, i) => {
          const b = ph.perm[i]!;
          if (a === b) return;
          swapped++;
          assert.ok(Math.abs(h[a * c.K + a]! - h[b * c.K + b]!) <= TIE * h[b * c.K + b]!, `${c.name}: permutation differs at ${i} (${a} vs ${b}) beyond a near-tie`);
        });
        const u = gpu.download(f.u, new Float32Array(c.K * c.K));
        let num = 0, den = 0;
        for (let i = 0; i < u.length; i++) { num += (u[i]! - ph.u[i]!) ** 2; den += ph.u[i]! ** 2; }
        const uErr = swapped ? 0 : Math.sqrt(num / den); // U is compared only in the same order
        const g = solver.quantize(w, c.N, f, opts);
        const sameQ = sameFraction(g.qw.q, cpu.qw.q), sameS = sameFraction(g.qw.scales, cpu.qw.scales);
        const og = objective(w, g.qw, h, c.N, c.K), oc = objective(w, cpu.qw, h, c.N, c.K);
        const rtn = objective(w, quantizeRtn(Float32Array.from(w, (v, i) => (i % c.K === dead ? 0 : v)), c.N, c.K, { group: c.group }), h, c.N, c.K);
        t.diagnostic(`${c.name}: ${swapped} permutation positions differ (near-ties), U rel err ${uErr.toExponential(2)}, same q ${(100 * sameQ).toFixed(2)}%, same scales ${(100 * sameS).toFixed(2)}%, objective gpu/cpu ${(og / oc).toFixed(5)}, gpu/rtn ${(og / rtn).toFixed(3)}, loss gpu/cpu ${(g.loss / cpu.loss).toFixed(5)}`);
        assert.ok(uErr <= U_REL_TOL, `${c.name}: U relative error ${uErr}`);
        assert.ok(sameQ >= MIN_SAME_Q, `${c.name}: ${(100 * sameQ).toFixed(2)}% int4 values equal`);
        if (c.actOrder) assert.equal(sameS, 1, `${c.name}: static scales are the original weights' (identical)`);
        else assert.ok(sameS >= MIN_SAME_Q, `${c.name}: ${(100 * sameS).toFixed(2)}% scales equal`);
        assert.ok(Math.abs(og - oc) <= OBJECTIVE_REL_TOL * oc, `${c.name}: objective ${og} vs CPU ${oc}`);
        assert.ok(og < rtn, `${c.name}: GPTQ objective ${og} not below RTN's ${rtn}`);
        assert.ok(Math.abs(g.loss - cpu.loss) <= OBJECTIVE_REL_TOL * cpu.loss, `${c.name}: loss ${g.loss} vs CPU ${cpu.loss}`);
        for (let n = 0; n < c.N; n++) assert.equal(g.qw.q[n * c.K + dead], 0, `${c.name}: dead input quantizes to 0`);
        assert.equal(g.qw.groupSize, cpu.qw.groupSize);
      } finally {
        f.free();
      }
    });
  } finally {
    solver.dispose();
  }
});

test('CUDA GPTQ: one-line errors for a non-positive-definite Hessian, a non-finite weight, --clip', { skip }, () => {
  const solver = new GpuGptq(Gpu.open());
  const oneLine = (re: RegExp) => (e: unknown) => e instanceof IntscaleError && re.test(e.message) && !e.message.includes('\n');
  try {
    const K = 64, neg = new Float64Array(K * K);
    for (let k = 0; k < K; k++) neg[k * K + k] = -1;
    assert.throws(() => solver.beginGroup({ hessian: neg }, K, { name: 'lin' }), oneLine(/^lin: matrix is not positive definite .*increase the dampening/));
    const rng = new Rng(9), x = inputs(rng, 128, K, -1);
    const acc = solver.gram(K);
    acc.add(x.subarray(0, 100 * K), 100);
    acc.add(x.subarray(100 * K), 28);
    const group = solver.beginGroup({ gram: acc }, K, { name: 'lin' });
    const w = weights(rng, 8, K);
    w[2 * K + 5] = NaN;
    assert.throws(() => group.quantize(w, 8, { group: 32, name: 'lin' }), oneLine(/^lin: non-finite weight in row 2$/));
    assert.throws(() => group.quantize(weights(rng, 8, K), 8, { group: 32, clip: true, name: 'lin' }), oneLine(/clip search \(--clip\) runs on the CPU only/));
    const again = solver.gram(K);
    again.add(x, 128);
    solver.beginGroup({ gram: again }, K, {}); // releases the earlier group
    assert.throws(() => group.quantize(weights(rng, 8, K), 8, { group: 32, name: 'lin' }), oneLine(/group was released/));
  } finally {
    solver.dispose();
  }
});

const smallModel = (seed: number): Model => smallLlama(seed);

test('the calibration pipeline with the CUDA GPTQ and layer forward matches the CPU pipeline (natural order: the device Gram of device rows; act-order with AWQ scales: the CPU Hessian from downloaded rows, uploaded)', { skip }, () => {
  const solver = new GpuGptq(Gpu.open());
  let groups = 0, linears = 0, forward = 0;
  const counting: GptqDevice = {
    label: solver.label,
    gram: (K) => solver.gram(K),
    beginGroup(input, K, opts) {
      groups++;
      const g = solver.beginGroup(input, K, opts);
      return { quantize: (w, N, o) => { linears++; return g.quantize(w, N, o); } };
    },
    layerOps(c) {
      const ops = solver.layerOps(c), linear = ops.linear.bind(ops);
      ops.linear = (...a) => { forward++; return linear(...a); };
      return ops;
    },
    dispose: () => solver.dispose(),
  };
  try {
    const rng = new Rng(31);
    const windows = Array.from({ length: 16 }, () => [1, ...Array.from({ length: 31 }, () => rng.int(0, 63))]);
    for (const o of [{ method: 'gptq', group: 32 }, { method: 'gptq', group: 32, actOrder: true, awqScales: true }] as MethodOptions[]) {
      const model = smallModel(21);
      const cpu = calibrateModel(model, windows, o), gpuRun = calibrateModel(model, windows, { ...o, gptqDevice: counting });
      let same = 0, total = 0;
      for (const [name, qw] of cpu.weights) {
        const g = gpuRun.weights.get(name)!;
        total += qw.q.length;
        same += sameFraction(g.q, qw.q) * qw.q.length;
      }
      assert.ok(same / total >= PIPELINE_MIN_SAME_Q, `${JSON.stringify(o)}: ${((100 * same) / total).toFixed(2)}% int4 values equal`);
    }
    assert.equal(groups, 2 * 2 * 4, 'one device group per input (4 per layer, 2 layers, 2 runs)');
    assert.equal(linears, 2 * 2 * 7, 'every linear on the device');
    assert.equal(forward, 2 * 7 + 2 * (7 + 2), "the forward's linears on the device (+ gate/up of the fold's preview)");
  } finally {
    counting.dispose();
  }
});
