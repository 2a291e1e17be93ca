// A batch of sequences in the CPU engine (forwardBatch, generateBatch): sequences at different
// positions with different chunk lengths, advanced together with one matmul per projection, give
// BIT-IDENTICAL logits to each sequence run alone (every kernel computes each row independently:
// the fp32 matmul, RMSNorm, per-token activation quantization), on the tiny random model and on
// stories260K, and with a mixture of experts; greedy generation of a batch equals each prompt generated alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { forwardBatch, Session, type Model } from '../../src/model/llama.ts';
import { generate, generateBatch } from '../../src/eval/generate.ts';
import { loadModel } from '../../src/model/load.ts';
import { heapLiveBytes } from '../../src/core/wasm-heap.ts';
import { Rng } from '../../src/core/rng.ts';
import { tinyModel } from './tiny-model.ts';

const STORIES = fileURLToPath(new URL('../../../shared/models/stories260K', import.meta.url));
const skipStories = fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES} (needs ../shared next to the repo)`;

/** Seeded random token chunks: `history` tokens already in each cache, then prefill chunks, then decode steps. */
function schedule(vocab: number, seed: number) {
  const rng = new Rng(seed);
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(0, vocab - 1));
  return {
    history: [ids(5), [], ids(2)],             // positions 5, 0, 2 before the batch
    prefill: [ids(4), ids(7), ids(1)],         // different chunk lengths
    decode: Array.from({ length: 4 }, () => ids(3).map((id) => [id])),
  };
}

function assertBitIdentical(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: logit ${i} is ${got[i]} in the batch, ${want[i]} alone`);
}

/** The schedule as one batch per step vs each sequence alone, step by step, logits bit for bit. */
function checkBatchEqualsAlone(model: Model, seed: number, attentionBlock?: number): void {
  const V = model.config.vocabSize;
  const s = schedule(V, seed);
  const opts = attentionBlock ? { attentionBlock } : {};
  const batch = s.history.map(() => new Session(model, opts));
  const alone = s.history.map(() => new Session(model, opts));
  try {
    s.history.forEach((h, i) => { if (h.length) { batch[i]!.forward(h); alone[i]!.forward(h); } });
    // prefill with all logits
    const got = forwardBatch(batch, s.prefill, { allLogits: true });
    s.prefill.forEach((chunk, i) => {
      assert.equal(got[i]!.length, chunk.length * V);
      assertBitIdentical(got[i]!, alone[i]!.forward(chunk, { allLogits: true }), `prefill seq ${i}`);
    });
    // decode steps, last-position logits; the last step leaves sequence 1 out
    s.decode.forEach((step, d) => {
      const members = d === s.decode.length - 1 ? [0, 2] : [0, 1, 2];
      const out = forwardBatch(members.map((i) => batch[i]!), members.map((i) => step[i]!));
      members.forEach((i, j) => assertBitIdentical(out[j]!, alone[i]!.forward(step[i]!), `decode step ${d} seq ${i}`));
    });
    batch.forEach((b, i) => assert.equal(b.pos, alone[i]!.pos));
    assert.deepEqual(batch.map((b) => b.pos), [5 + 4 + 4, 0 + 7 + 3, 2 + 1 + 4]);
  } finally {
    for (const x of [...batch, ...alone]) x.dispose();
  }
}

for (const [layout, bias] of [['half', false], ['interleaved', false], ['half', true]] as const) {
  test(`tiny model (${layout}${bias ? ', q/k/v biases' : ''}): a batch of 3 at different positions = each alone, bit for bit`, () => {
    const { model } = tinyModel(layout, bias);
    checkBatchEqualsAlone(model, 7);
    checkBatchEqualsAlone(model, 8, 2); // blocked attention too
  });
}

test('tiny Mixtral (4 experts, top 2): a batch of 3 = each alone, bit for bit (rows regroup per expert, each row stays its own)', () => {
  const { model } = tinyModel('half', false, { experts: 4, topK: 2 });
  checkBatchEqualsAlone(model, 9);
});

test('tiny model: greedy generateBatch = generate of each prompt alone; sessions are disposed', () => {
  const { model } = tinyModel('half', true);
  const prompts = [[1, 5, 9], [2], [3, 3, 8, 12, 30, 4]];
  generate(model, [1], { maxNew: 2 }); // weights into the heap before counting
  const before = heapLiveBytes();
  const r = generateBatch(model, prompts, { maxNew: 8, stopIds: [0] });
  assert.equal(heapLiveBytes(), before);
  prompts.forEach((p, i) => assert.deepEqual(r.ids[i], generate(model, p, { maxNew: 8, stopIds: [0] }).ids, `prompt ${i}`));
  // sampling: sequence i uses seed + i
  const sampled = generateBatch(model, prompts, { maxNew: 6, temperature: 1, seed: 10 });
  prompts.forEach((p, i) => assert.deepEqual(sampled.ids[i], generate(model, p, { maxNew: 6, temperature: 1, seed: 10 + i }).ids));
  // streaming callback: every id once, tagged with its sequence
  const seen: number[][] = prompts.map(() => []);
  generateBatch(model, prompts, { maxNew: 5, onToken: (i, id) => seen[i]!.push(id) });
  assert.deepEqual(seen, generateBatch(model, prompts, { maxNew: 5 }).ids);
});

test('forwardBatch refuses bad batches with clear errors', () => {
  const { model } = tinyModel('half', false);
  const other = tinyModel('interleaved', false).model;
  const a = new Session(model), b = new Session(model), c = new Session(other);
  assert.throws(() => forwardBatch([], []), /empty batch/);
  assert.throws(() => forwardBatch([a, b], [[1]]), /2 sessions but 1 token chunks/);
  assert.throws(() => forwardBatch([a, a], [[1], [2]]), /appears twice/);
  assert.throws(() => forwardBatch([a, c], [[1], [2]]), /share one model/);
  assert.throws(() => forwardBatch([a, b], [[1], []]), /no tokens/);
  assert.throws(() => forwardBatch([a, b], [[1], new Array(25).fill(1)]), /exceeds the context of 24/);
  assert.throws(() => forwardBatch([a, b], [[1], [40]]), /outside the vocabulary/);
  assert.equal(a.pos, 0, 'a refused batch advances nothing');
  b.dispose();
  assert.throws(() => forwardBatch([a, b], [[1], [2]]), /used after dispose/);
  assert.throws(() => generateBatch(model, [[1], []]), /empty prompt 1/);
  a.dispose(); c.dispose();
});

test('stories260K: a batch of 3 at different positions = each alone, bit for bit', { skip: skipStories }, () => {
  checkBatchEqualsAlone(loadModel(STORIES), 3);
});

test('stories260K: greedy generateBatch of 3 prompts = each generated alone', { skip: skipStories }, () => {
  const model = loadModel(STORIES);
  const tok = model.tokenizer;
  const prompts = ['Once upon a time', 'Tom had a red ball. He', 'The cat'].map((t) => tok.encode(t, { addBos: true }));
  const opts = { maxNew: 40, stopIds: [1] };
  const r = generateBatch(model, prompts, opts);
  prompts.forEach((p, i) => {
    const alone = generate(model, p, opts).ids;
    assert.ok(alone.length > 10, `prompt ${i} generates some text`);
    assert.deepEqual(r.ids[i], alone, `prompt ${i}`);
  });
});

test('CLI: generate with several --prompt prints each text under "[i] <prompt>", the same as alone', { skip: skipStories }, () => {
  const bin = fileURLToPath(new URL('../../bin/intscale.js', import.meta.url));
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, 'generate', STORIES, '--max-new', '12', '--device', 'cpu', ...args], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
  const both = cli('--prompt', 'Once upon a time', '--prompt', 'The cat');
  assert.equal(both.status, 0, both.stderr);
  const alone = ['Once upon a time', 'The cat'].map((p) => cli('--prompt', p).stdout);
  assert.equal(both.stdout, `[0] Once upon a time\n${alone[0]}[1] The cat\n${alone[1]}`);
  assert.match(both.stderr, /^24 tokens in 2 sequences, [0-9.]+ tokens\/s \(prompts \d+ tokens in \d+ ms\)\n$/);
});

test('CLI: bench cpu --batch B decodes B sequences per step; --batch 0 is refused', { skip: skipStories }, () => {
  const bin = fileURLToPath(new URL('../../bin/intscale.js', import.meta.url));
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, 'bench', 'cpu', '--model', STORIES, '--prefill', '16', '--decode', '8', '--runs', '1', ...args], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
  const r = cli('--batch', '3', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { batch: number; decodeTokens: number; decodeTokensPerSecond: number };
  assert.equal(j.batch, 3);
  assert.equal(j.decodeTokens, 8);
  assert.ok(j.decodeTokensPerSecond > 0);
  const bad = cli('--batch', '0');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^intscale: --batch: must be a positive integer \(got 0\)\n$/);
});
