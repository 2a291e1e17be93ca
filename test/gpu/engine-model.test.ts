// The GPU engine end to end against the CPU engine: docs-llama-30m perplexity in every mode, the
// reference prompt's top-5, greedy generation (graph replay = plain launches), mixed-length
// batches, checkpoint errors identical to the CPU loader's, and the logits of a 2-layer
// LLaMA-3-8B-shaped random model and of a small random Mixtral (mixture of experts) in every mode. Skipped without a GPU (and without ../shared for the real model).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { f16ArrayToF32 } from '../../src/core/dtype.ts';
import { IntscaleError } from '../../src/core/errors.ts';
import { Gpu } from '../../src/gpu/runtime.ts';
import { loadModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { denseLinear, mapLinears, type LayerWeights, type ModelWeights } from '../../src/model/weights.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { archPreset } from '../../src/model/arch-presets.ts';
import { generate } from '../../src/eval/generate.ts';
import { gpuPerplexity, loadOnGpu, openGpu, type GpuContext } from '../../src/eval/gpu-eval.ts';
import { CudaEngine } from '../../src/backends/cuda/engine.ts';
import type { Mode, QuantMode } from '../../src/core/modes.ts';
import { quantizeDeviceModel, type DeviceModel } from '../../src/backends/cuda/device-model.ts';
import { randomDeviceModel } from '../../src/backends/cuda/load-device.ts';
import { generateOnGpu, prefill } from '../../src/backends/cuda/run.ts';
import { quantizeRtn } from '../../src/quant/rtn.ts';
import { computeIntegerScales } from '../../src/quant/integer-scale.ts';
import { quantizedLinear } from '../../src/quant/quantized-linears.ts';
import { writeQuantizedModel } from '../../src/quant/quantize-model.ts';
import { MODEL_30M, PERSUASION, sharedMissing } from '../quant/helpers.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;
const skipReal = skip || (sharedMissing ? `skipped: ${sharedMissing}` : false);

/** CPU engine perplexities of docs-llama-30m, first 4,088 tokens of persuasion.txt, ctx 512 (`intscale compare --device cpu`, 2026-12-01: g128 for W4A16/FS/IS, per channel for PC). */
const CPU_PPL: Record<QuantMode, number> = {
  'w4a16': 27.696006, 'w4a8-fs': 27.741820, 'w4a8-is': 27.740555, 'w4a8-pc': 28.361545,
};
const FP16_REFERENCE = 26.5106;
const PROMPT_IDS = [1, 2324, 303, 264, 598, 318, 74, 471, 577, 355, 553, 264, 458, 80, 397, 2650, 2871, 14, 363, 264,
  1472, 843, 290, 3435, 2135, 306, 264, 2545, 328, 86, 344, 71];

let ctx: GpuContext | undefined;
const gpuCtx = () => (ctx ??= openGpu());
let fp16Cached: DeviceModel | undefined;
const fp16Model = () => (fp16Cached ??= loadOnGpu(gpuCtx(), MODEL_30M, { mode: 'fp16' }));
const withMode = <T>(mode: Mode, f: (m: DeviceModel) => T): T => {
  const c = gpuCtx(), base = fp16Model();
  if (mode === 'fp16') return f(base);
  const s = c.gpu.stream();
  const m = quantizeDeviceModel(c.gpu, c.kernels, s, base, mode, 128);
  try {
    return f(m);
  } finally {
    m.free();
    s.destroy();
  }
};
const top = (logits: Float32Array, n: number) => [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, n);

test('docs-llama-30m perplexity on the GPU: FP16 within 0.1% of the reference, every W4 mode within 0.2% of the CPU engine', { skip: skipReal, timeout: 600_000 }, () => {
  const cpu = loadModel(MODEL_30M);
  const ids = cpu.tokenizer.encode(fs.readFileSync(PERSUASION, 'utf8'), { addBos: false });
  for (const mode of ['fp16', 'w4a16', 'w4a8-fs', 'w4a8-is', 'w4a8-pc'] as Mode[]) {
    const ppl = withMode(mode, (m) => gpuPerplexity(gpuCtx(), m, ids, { ctx: 512, maxTokens: 4088, bosId: 1 }).ppl);
    const want = mode === 'fp16' ? FP16_REFERENCE : CPU_PPL[mode];
    const rel = Math.abs(ppl - want) / want;
    process.stderr.write(`# GPU ${mode}: ppl ${ppl.toFixed(4)} (CPU/reference ${want}, ${(100 * rel).toFixed(3)}%)\n`);
    assert.ok(rel <= (mode === 'fp16' ? 1e-3 : 2e-3), `${mode}: ${ppl} vs ${want}`);
  }
});

test('docs-llama-30m on the GPU: top-5 of the reference prompt = the CPU engine\'s; greedy generation = the CPU\'s (or differs at a near-tie); graph replay = plain launches; mixed-length batch = each alone', { skip: skipReal, timeout: 600_000 }, () => {
  const cpu = loadModel(MODEL_30M);
  const c = gpuCtx(), model = fp16Model();
  const cpuLast = new Session(cpu).forward(PROMPT_IDS);
  const engine = new CudaEngine(c.gpu, model, { maxBatch: 4, maxSeq: 128 }, c.kernels);
  try {
    const gpuLast = prefill(engine, [PROMPT_IDS], undefined, true).logits[0]!;
    assert.deepEqual(top(gpuLast, 5), top(cpuLast, 5), 'top-5 ids');
    const prompts = ['It is a truth universally acknowledged', 'The kernel module', 'def main():'].map((t) => cpu.tokenizer.encode(t, { addBos: true }));
    const gpuGraph = generateOnGpu(engine, prompts, { maxNew: 32 }).ids;
    const gpuPlain = generateOnGpu(engine, prompts, { maxNew: 32, graph: false }).ids;
    assert.deepEqual(gpuGraph, gpuPlain, 'graph replay and plain launches give identical tokens');
    prompts.forEach((p, i) => {
      const ref = generate(cpu, p, { maxNew: 32 }).ids;
      const first = ref.findIndex((id, t) => id !== gpuGraph[i]![t]);
      if (first === -1) return;
      // a difference is allowed only where the CPU's top-2 logits are within 1e-2 (a near-tie)
      const logits = new Session(cpu).forward([...p, ...ref.slice(0, first)]);
      const [a, b] = top(logits, 2);
      assert.ok(Math.abs(logits[a!]! - logits[b!]!) <= 1e-2, `prompt ${i}: GPU differs at token ${first} where the CPU's top-2 differ by ${logits[a!]! - logits[b!]!}`);
    });
    // mixed lengths in one batch vs each alone: prefill logits and one decode step (fp16 rounding only)
    for (const mode of ['fp16', 'w4a8-is'] as Mode[]) {
      withMode(mode, (m) => {
        const e = new CudaEngine(c.gpu, m, { maxBatch: 3, maxSeq: 64 }, c.kernels);
        try {
          const batch = prefill(e, prompts, undefined, true).logits;
          e.beginDecode([420, 303, 14], prompts.map((p) => p.length));
          e.decode(3, 1);
          const decodeBatch = e.readLogits(3);
          prompts.forEach((p, i) => {
            const alone = prefill(e, [p], undefined, true).logits[0]!;
            e.beginDecode([[420, 303, 14][i]!], [p.length]);
            e.decode(1, 1);
            const decodeAlone = e.readLogits(1);
            const V = m.config.vocabSize;
            const maxDiff = (x: Float32Array, y: Float32Array) => x.reduce((mx, v, j) => Math.max(mx, Math.abs(v - y[j]!)), 0);
            assert.ok(maxDiff(batch[i]!, alone) <= 2e-2, `${mode} prefill seq ${i}: max |Δlogit| ${maxDiff(batch[i]!, alone)}`);
            assert.ok(maxDiff(decodeBatch.subarray(i * V, (i + 1) * V), decodeAlone) <= 2e-2, `${mode} decode seq ${i}`);
          });
        } finally {
          e.destroy();
        }
      });
    }
  } finally {
    engine.destroy();
  }
});

test('quantized checkpoints: tampered or foreign tensors give the CPU loader\'s one-line errors on the GPU too', { skip: skipReal, timeout: 300_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-gpu-q-'));
  try {
    const good = path.join(tmp, 'q');
    await writeQuantizedModel(MODEL_30M, good, { method: 'rtn', wbits: 4, group: 128, abits: 8, scale: 'int', amplifier: 'auto', clip: false });
    const c = gpuCtx();
    // the intact checkpoint loads and runs as W4A8-IS with the CPU's perplexity
    const cpu = loadModel(MODEL_30M);
    const ids = cpu.tokenizer.encode(fs.readFileSync(PERSUASION, 'utf8'), { addBos: false });
    const m = loadOnGpu(c, good);
    try {
      assert.equal(m.mode, 'w4a8-is');
      const ppl = gpuPerplexity(c, m, ids, { ctx: 512, maxTokens: 4088, bosId: 1 }).ppl;
      assert.ok(Math.abs(ppl - CPU_PPL['w4a8-is']) / CPU_PPL['w4a8-is'] <= 2e-3, `checkpoint W4A8-IS ppl ${ppl}`);
    } finally {
      m.free();
    }
    const tamper = (name: string, edit: (dir: string) => void) => {
      const dir = path.join(tmp, name);
      fs.cpSync(good, dir, { recursive: true });
      edit(dir);
      const message = (f: () => unknown) => {
        try { f(); } catch (e) { if (e instanceof IntscaleError) return e.message; throw e; }
        return 'loaded';
      };
      const cpuErr = message(() => loadModel(dir));
      const gpuErr = message(() => { loadOnGpu(c, dir).free(); });
      assert.notEqual(cpuErr, 'loaded', name);
      assert.equal(gpuErr, cpuErr, `${name}: GPU and CPU errors`);
      assert.ok(!gpuErr.includes('\n'), 'one line');
    };
    const shard = (dir: string) => path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.safetensors'))!);
    // a shift outside 0..30 in one output channel: the loaders' check of the integer scales refuses it
    tamper('shift', (dir) => {
      const file = shard(dir), buf = fs.readFileSync(file), n = Number(buf.readBigUInt64LE(0));
      const header = JSON.parse(buf.subarray(8, 8 + n).toString()) as Record<string, { dtype?: string; data_offsets: [number, number] }>;
      const t = Object.entries(header).find(([k]) => k.endsWith('.shift'))![1];
      buf.writeInt8(31, 8 + n + t.data_offsets[0]);
      fs.writeFileSync(file, buf);
    });
    // a foreign tensor: the config names a quantization the loader does not know
    tamper('foreign', (dir) => {
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      cfg.quantization_config.quant_method = 'gptq';
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

/**
 * Tolerance of GPU vs CPU logits (‖Δ‖/‖ref‖) on the 2-layer model. The GPU rounds every activation
 * to fp16 (relative 2^-11 ≈ 4.9e-4 each); about 12 roundings in a row per layer and 2 layers, as
 * independent errors, give ≈ √24·4.9e-4 ≈ 2.4e-3 — so FP16 and W4A16 get 1e-2. W4A8 quantizes the
 * fp16-rounded activation where the CPU quantizes the fp32 one: a 2^-11 shift moves x·127/amax
 * across a rounding boundary for ≈ 12% of elements (|x·127/amax| ≤ 127 times 2^-11 ≈ 0.06 of a
 * step, both sides), i.e. one int8 step on those: ≈ √0.12·(amax/127)/rms(x) ≈ 1% per linear input
 * for amax ≈ 4·rms, over 4 linears per layer and 2 layers → ≈ 3%: W4A8 gets 6e-2.
 */
const LOGITS_TOL: Record<Mode, number> = { 'fp16': 1e-2, 'w4a16': 1e-2, 'w4a8-fs': 6e-2, 'w4a8-is': 6e-2, 'w4a8-pc': 6e-2 };

// A small Mixtral: 4 experts, top 2, GQA 8/2 (the routing, the grouped rows and the combine on the GPU
// against the CPU engine's moeAdd); random routers ~N(0, 0.02²) give logits of order 1: several experts run.
const SMALL_MIXTRAL: ModelConfig = {
  arch: 'mixtral', dim: 512, hiddenDim: 1024, nLayers: 2, nHeads: 8, nKvHeads: 2, headDim: 64, vocabSize: 1024, maxSeq: 64,
  normEps: 1e-5, rope: { theta: 1e6, layout: 'half' }, tieEmbeddings: false, qkvBias: false, nExperts: 4, nExpertsPerTok: 2, bosId: 1, eosId: 2,
};

for (const [label, config] of [['2-layer LLaMA-3-8B-shaped random model (GQA 32/8, down K = 14336)', { ...archPreset('llama3-8b', 2), vocabSize: 4096 }],
                               ['2-layer small Mixtral (4 experts, top 2, GQA 8/2)', SMALL_MIXTRAL]] as const) {
test(`${label}: GPU logits = CPU engine within the derived tolerance, every mode`, { skip, timeout: 600_000 }, () => {
  const c = gpuCtx();
  const s = c.gpu.stream();
  const dev = randomDeviceModel(c.gpu, c.kernels, s, config, 42);
  try {
    // the same weights for the CPU engine: download and split the fused projections
    const f32 = (buf: { bytes: number }, elems: number) => f16ArrayToF32(c.gpu.download(buf as never, new Uint16Array(elems)));
    const { dim, hiddenDim: H, headDim: hd, nHeads, nKvHeads, vocabSize: V } = config;
    const qDim = nHeads * hd, kvDim = nKvHeads * hd;
    const weights: ModelWeights = {
      embedding: f32(dev.embed, V * dim),
      finalNorm: f32(dev.finalNorm, dim),
      lmHead: denseLinear(f32(dev.head.weight, V * dim), V, dim),
      layers: dev.layers.map((l): LayerWeights => {
        const qkv = f32(l.qkv.weight, (qDim + 2 * kvDim) * dim);
        // a fused gate|up and a down on the GPU → the CPU's w1, w3, w2
        const mlp = (x: { gateUp: { weight: unknown }; down: { weight: unknown } }) => {
          const gu = f32(x.gateUp.weight as never, 2 * H * dim);
          return { w1: denseLinear(gu.slice(0, H * dim), H, dim), w3: denseLinear(gu.slice(H * dim), H, dim), w2: denseLinear(f32(x.down.weight as never, dim * H), dim, H) };
        };
        const attention = {
          attnNorm: f32(l.attnNorm, dim), ffnNorm: f32(l.ffnNorm, dim),
          wq: denseLinear(qkv.slice(0, qDim * dim), qDim, dim),
          wk: denseLinear(qkv.slice(qDim * dim, (qDim + kvDim) * dim), kvDim, dim),
          wv: denseLinear(qkv.slice((qDim + kvDim) * dim), kvDim, dim),
          wo: denseLinear(f32(l.o.weight, dim * qDim), dim, qDim),
        };
        const f = l.ffn;
        if (f.kind === 'swiglu') return { ...attention, ...mlp(f) };
        const E = f.experts.length;
        return { ...attention, moe: { router: denseLinear(f32(f.router.weight, E * dim), E, dim), topK: f.topK, experts: f.experts.map(mlp) } };
      }),
    };
    const cpu = { config, weights };
    // Mixtral: 20 tokens, so that one step of all of them runs the per-expert GEMMs and steps of 12 + 8
    // (a chunked prefill) run the grouped ones (steps of at most 16 rows): both against the CPU
    const moe = config.arch === 'mixtral';
    const tokens = [1, 17, 2049, 333, 4000, 5, 77, 1024, ...(moe ? [9, 99, 999, 3, 31, 313, 7, 70, 700, 11, 111, 4095] : [])]
      .map((t) => t % config.vocabSize);
    const cpuLogits = (): Float32Array => new Session(cpu, { maxSeq: 32 }).forward(tokens, { allLogits: true });
    const gpuLogits = (m: DeviceModel, steps = [tokens.length]): Float32Array => {
      const e = new CudaEngine(c.gpu, m, { maxBatch: 1, maxSeq: 32, maxRows: 32, allLogits: true }, c.kernels);
      try {
        const out = new Float32Array(tokens.length * config.vocabSize);
        let pos = 0;
        for (const n of steps) {
          e.runStep([{ slot: 0, pos, tokens: tokens.slice(pos, pos + n) }], { allLogits: true });
          out.set(e.readLogits(n), pos * config.vocabSize);
          pos += n;
        }
        return out;
      } finally {
        e.destroy();
      }
    };
    const relErr = (g: Float32Array, r: Float32Array) => {
      let num = 0, den = 0;
      r.forEach((v, i) => { num += (g[i]! - v) ** 2; den += v * v; });
      return Math.sqrt(num / den);
    };
    const check = (mode: Mode, ref: Float32Array, m: DeviceModel) => {
      for (const steps of moe ? [[tokens.length], [12, 8]] : [[tokens.length]]) {
        const err = relErr(gpuLogits(m, steps), ref);
        process.stderr.write(`# ${label}, ${mode}, steps of ${steps.join(' + ')} rows: ‖GPU − CPU‖/‖CPU‖ = ${err.toExponential(2)} (tol ${LOGITS_TOL[mode]})\n`);
        assert.ok(err <= LOGITS_TOL[mode], `${mode}, steps ${steps}: ${err}`);
      }
    };
    check('fp16', cpuLogits(), dev);
    if (moe) {
      // decode of a batch of 2 (grouped expert GEMMs): graph replays = plain launches, greedy ids in
      // range, the first one a maximum of the prefill's last logits (up to the GEMMs' rounding);
      // batches above 16 rows decode eagerly (per-expert GEMMs)
      const e = new CudaEngine(c.gpu, dev, { maxBatch: 2, maxSeq: 48 }, c.kernels);
      try {
        assert.equal(e.graphable(2), true);
        assert.equal(e.graphable(17), false);
        const prompts = [tokens, tokens.slice(0, 5)];
        const ids = generateOnGpu(e, prompts, { maxNew: 6 }).ids;
        assert.deepEqual(generateOnGpu(e, prompts, { maxNew: 6, graph: false }).ids, ids, 'graph = plain launches');
        assert.deepEqual(ids.map((x) => x.length), [6, 6]);
        assert.ok(ids.flat().every((id) => Number.isInteger(id) && id >= 0 && id < config.vocabSize), ids.join(' | '));
        const last = gpuLogits(dev).subarray((tokens.length - 1) * config.vocabSize, tokens.length * config.vocabSize);
        const top = Math.max(...last), spread = top - Math.min(...last);
        assert.ok(top - last[ids[0]![0]!]! <= 1e-2 * spread, `first id ${ids[0]![0]}: logit ${last[ids[0]![0]!]} vs max ${top}`);
      } finally {
        e.destroy();
      }
    }
    // CPU: RTN g128 (+ integer scales) and per channel, the same quantizer the GPU runs bit for bit
    const layersG128 = new Map<string, { qw: ReturnType<typeof quantizeRtn>; is: ReturnType<typeof computeIntegerScales> }>();
    const layersPc = new Map<string, ReturnType<typeof quantizeRtn>>();
    const originals = new Map<string, ReturnType<typeof denseLinear>>();
    mapLinears(weights, (name, linear, raw) => {
      const qw = quantizeRtn(raw!, linear.outFeatures, linear.inFeatures, { group: 128, name });
      layersG128.set(name, { qw, is: computeIntegerScales(qw, 'auto', name) });
      layersPc.set(name, quantizeRtn(raw!, linear.outFeatures, linear.inFeatures, { group: -1, name }));
      originals.set(name, linear);
      return linear;
    });
    for (const mode of ['w4a16', 'w4a8-fs', 'w4a8-is', 'w4a8-pc'] as const) {
      const made: { dispose?(): void }[] = [];
      mapLinears(weights, (name) => {
        const l = mode === 'w4a8-pc'
          ? quantizedLinear({ name, qw: layersPc.get(name)!, is: { iscales: new Int32Array(0), shift: new Int8Array(0) } }, mode)
          : quantizedLinear({ name, ...layersG128.get(name)! }, mode);
        made.push(l);
        return l;
      });
      const ref = cpuLogits();
      mapLinears(weights, (name) => originals.get(name)!);
      for (const l of made) l.dispose?.();
      const q = quantizeDeviceModel(c.gpu, c.kernels, s, dev, mode, 128);
      try {
        check(mode, ref, q);
      } finally {
        q.free();
      }
    }
  } finally {
    dev.free();
    s.destroy();
  }
});
}

test.after(() => {
  fp16Cached?.free();
});
