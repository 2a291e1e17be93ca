// Acceptance: docs-llama-30m (HF format, fp16 safetensors) against the reference numbers of
// shared/models/docs-llama-30m/README.md (transformers fp32): tokenizer ids, top-5 logits of the
// Austen prompt (within 1e-3), and perplexity of the first 4,088 tokens of both eval texts
// (within 0.1%).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel, type LoadedModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { perplexity } from '../../src/eval/perplexity.ts';

const SHARED = fileURLToPath(new URL('../../../shared', import.meta.url));
const DIR = `${SHARED}/models/docs-llama-30m`;
const skip = fs.existsSync(DIR) ? false : `shared model missing: ${DIR} (needs ../shared next to the repo)`;

const LOGIT_TOL = 1e-3;       // absolute, vs transformers fp32
const PPL_REL_TOL = 1e-3;     // 0.1%

const PROMPT = 'It is a truth universally acknowledged, that a single man in possession of a good fortune';
const PROMPT_IDS = [1, 2324, 303, 264, 598, 318, 74, 471, 577, 355, 553, 264, 458, 80, 397, 2650, 2871, 14, 363, 264,
  1472, 843, 290, 3435, 2135, 306, 264, 2545, 328, 86, 344, 71];
const TOP5: [number, number][] = [[420, 8.901329], [303, 8.874865], [201, 8.838902], [14, 8.490139], [442, 8.051236]];

let cached: LoadedModel | undefined;
const model = (): LoadedModel => (cached ??= loadModel(DIR));

test('docs-llama-30m: config and tokenizer ids', { skip }, () => {
  const m = model();
  assert.equal(m.config.nKvHeads, 4);
  assert.equal(m.config.rope.theta, 10000);
  assert.deepEqual(m.tokenizer.encode(PROMPT, { addBos: true }), PROMPT_IDS);
});

test('docs-llama-30m: top-5 next-token logits of the Austen prompt', { skip }, () => {
  const logits = new Session(model()).forward(PROMPT_IDS);
  const top = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 5);
  assert.deepEqual(top, TOP5.map(([id]) => id));
  for (const [id, want] of TOP5) assert.ok(Math.abs(logits[id]! - want) <= LOGIT_TOL, `logit ${id}: ${logits[id]} vs ${want}`);
});

test('docs-llama-30m: chunked prefill and token-by-token decode agree', { skip }, () => {
  const m = model();
  const whole = new Session(m).forward(PROMPT_IDS, { allLogits: true });
  const s = new Session(m);
  s.forward(PROMPT_IDS.slice(0, 20));
  const vocab = m.config.vocabSize;
  for (let t = 20; t < PROMPT_IDS.length; t++) {
    const step = s.forward([PROMPT_IDS[t]!]);
    for (let i = 0; i < vocab; i++)
      assert.ok(Math.abs(step[i]! - whole[t * vocab + i]!) <= LOGIT_TOL, `position ${t} logit ${i}`);
  }
});

for (const [file, want] of [['persuasion.txt', 26.5106], ['docs-valid.txt', 10.2752]] as const) {
  test(`docs-llama-30m: perplexity of the first 4,088 tokens of ${file} = ${want} (±0.1%)`, { skip }, () => {
    const m = model();
    const ids = m.tokenizer.encode(fs.readFileSync(`${SHARED}/data/eval/${file}`, 'utf8'), { addBos: false });
    const chunks: number[] = [];
    const running: number[] = [];
    const r = perplexity(m, ids, { ctx: 512, maxTokens: 4088, onProgress: (scored, _total, ppl) => { chunks.push(scored); running.push(ppl); } });
    assert.equal(r.tokens, 4088);
    assert.deepEqual(chunks, [511, 1022, 1533, 2044, 2555, 3066, 3577, 4088]);
    assert.ok(Math.abs(r.ppl / want - 1) <= PPL_REL_TOL, `ppl ${r.ppl} vs ${want}`);
    if (file === 'persuasion.txt') {
      // the README's debugging number: mean NLL of the first chunk alone
      const firstChunkNll = Math.log(running[0]!);
      assert.ok(Math.abs(firstChunkNll - 3.727355) <= 1e-3 * 3.727355, `first-chunk mean NLL ${firstChunkNll}`);
    }
  });
}
