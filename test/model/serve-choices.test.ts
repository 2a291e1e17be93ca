// Several choices per request in the completions server on stories260K: a list of prompts and n
// samples per prompt. Choice i·n + j is prompt i sampled with seed + j, so it equals a request of
// that prompt alone with that seed (greedy: every j the same text); streamed chunks carry their
// choice's index and add up per index; usage counts each prompt once; limits are 400s. vLLM's
// stop_token_ids and ignore_eos; the API key.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generate } from '../../src/eval/generate.ts';
import { TextStreamer } from '../../src/io/tokenizer.ts';
import { loadModel } from '../../src/model/load.ts';
import { cpuStepBackend } from '../../src/serve/generate-continuous.ts';
import { CompletionServer } from '../../src/serve/server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORIES = path.join(ROOT, '../shared/models/stories260K');
const skip = fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES}`;

test('serve: prompt lists and n choices = single requests with seed + j; streamed by index; 400s', { skip, timeout: 120_000 }, async () => {
  const model = loadModel(STORIES), tok = model.tokenizer;
  const server = new CompletionServer(cpuStepBackend(model, 3, 256, 8), tok, { model: 'stories260K' });
  const port = await server.listen(0);
  const post = (body: unknown) => fetch(`http://127.0.0.1:${port}/v1/completions`, { method: 'POST', body: JSON.stringify(body) });
  const one = async (prompt: unknown, seed: number) =>
    (await post({ prompt, max_tokens: 10, temperature: 0.9, seed, stop_at_eos: false }).then((r) => r.json())).choices[0].text as string;
  try {
    const prompts = ['Once upon a time', tok.encode('The cat', { addBos: true })];
    const r = await post({ prompt: prompts, n: 3, max_tokens: 10, temperature: 0.9, seed: 5, stop_at_eos: false }).then((x) => x.json());
    assert.deepEqual(r.choices.map((c: { index: number }) => c.index), [0, 1, 2, 3, 4, 5]);
    for (const [i, p] of prompts.entries())
      for (let j = 0; j < 3; j++) assert.equal(r.choices[i * 3 + j].text, await one(p, 5 + j), `prompt ${i}, sample ${j}`);
    assert.notEqual(r.choices[0].text, r.choices[1].text, 'the samples differ');
    const promptTokens = tok.encode(prompts[0] as string, { addBos: true }).length + (prompts[1] as number[]).length;
    assert.deepEqual(r.usage, { prompt_tokens: promptTokens, completion_tokens: 60, total_tokens: promptTokens + 60 });

    const greedy = await post({ prompt: 'The sun', n: 2, max_tokens: 8, temperature: 0, stop_at_eos: false }).then((x) => x.json());
    assert.equal(greedy.choices[0].text, greedy.choices[1].text, 'greedy: the same text for every sample');

    const stream = await post({ prompt: prompts, n: 2, max_tokens: 10, temperature: 0.9, seed: 5, stream: true, stop_at_eos: false });
    const events = (await stream.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const byIndex = new Map<number, string>();
    const finishes = new Map<number, string>();
    for (const e of events.slice(0, -1).map((x) => JSON.parse(x))) {
      const c = e.choices[0];
      byIndex.set(c.index, (byIndex.get(c.index) ?? '') + c.text);
      if (c.finish_reason) finishes.set(c.index, c.finish_reason);
    }
    assert.deepEqual([...byIndex.keys()].sort(), [0, 1, 2, 3]);
    for (const [i, p] of prompts.entries())
      for (let j = 0; j < 2; j++) assert.equal(byIndex.get(i * 2 + j), await one(p, 5 + j), `streamed prompt ${i}, sample ${j}`);
    assert.deepEqual([...finishes.values()], ['length', 'length', 'length', 'length']);

    // stop_token_ids (vLLM): the sequence ends before the first of them, which is not emitted
    const ids = generate(model, tok.encode('The sun', { addBos: true }), { maxNew: 10, temperature: 0 }).ids;
    const cut = ids.indexOf(ids[4]!);
    const stopped = await post({ prompt: 'The sun', max_tokens: 10, temperature: 0, stop_token_ids: [ids[4]], ignore_eos: true }).then((x) => x.json());
    const streamer = new TextStreamer(tok, tok.encode('The sun', { addBos: true }));
    assert.equal(stopped.choices[0].text, ids.slice(0, cut).map((id) => streamer.push(id)).join('') + streamer.flush());
    assert.equal(stopped.choices[0].finish_reason, 'stop');
    assert.equal(stopped.usage.completion_tokens, cut);
    const ignoring = await post({ prompt: 'The sun', max_tokens: 10, temperature: 0, ignore_eos: true }).then((x) => x.json());
    const notStopping = await post({ prompt: 'The sun', max_tokens: 10, temperature: 0, stop_at_eos: false }).then((x) => x.json());
    assert.equal(ignoring.choices[0].text, notStopping.choices[0].text);

    const bad = async (body: unknown, re: RegExp) => {
      const res = await post(body);
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, re);
    };
    await bad({ prompt: 'x', n: 0 }, /"n" must be an integer from 1 to 64/);
    await bad({ prompt: Array.from({ length: 9 }, () => 'x'), n: 8 }, /9 prompts × n = 8 exceed the 64 choices/);
    await bad({ prompt: ['x', 3] }, /"prompt" must be a string, a non-empty array of token ids .*, or a list of either/);
    await bad({ prompt: [] }, /"prompt" must be/);
    await bad({ prompt: 'x', stop_token_ids: [-1] }, /"stop_token_ids" must be a list of token ids below/);
    await bad({ prompt: 'x', ignore_eos: 'yes' }, /"ignore_eos" must be true or false/);
    await bad({ prompt: 'x', stream: 1 }, /"stream" must be true or false/);
  } finally {
    await server.close();
  }
});

test('serve --api-key: /v1/ routes need the bearer key (401 otherwise); /health does not', { skip, timeout: 60_000 }, async () => {
  const model = loadModel(STORIES), tok = model.tokenizer;
  const server = new CompletionServer(cpuStepBackend(model, 1, 64, 8), tok, { model: 'stories260K', apiKey: 's3cret' });
  const port = await server.listen(0);
  const url = (route: string) => `http://127.0.0.1:${port}${route}`;
  const body = JSON.stringify({ prompt: 'The sun', max_tokens: 3, temperature: 0 });
  try {
    for (const authorization of [undefined, 'Bearer wrong', 'Bearer s3cret2', 's3cret']) {
      const r = await fetch(url('/v1/completions'), { method: 'POST', body, headers: authorization ? { authorization } : {} });
      assert.equal(r.status, 401, String(authorization));
      assert.match((await r.json()).error.message, /a valid API key is needed/);
    }
    assert.equal((await fetch(url('/v1/models'))).status, 401);
    assert.equal((await fetch(url('/health'))).status, 200);
    const ok = await fetch(url('/v1/completions'), { method: 'POST', body, headers: { authorization: 'Bearer s3cret' } });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).usage.completion_tokens, 3);
  } finally {
    await server.close();
  }
});
