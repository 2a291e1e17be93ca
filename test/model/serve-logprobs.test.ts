// logprobs in the completions server (src/serve/logprobs.ts, server.ts) on stories260K: the reported
// logprob of each new token is the log-softmax of the model's own logits there (recomputed here
// with a Session on the prompt and the ids generate gives alone, to 1e-12), greedy tokens are their position's
// most likely, the alternatives are the top ids in order; /v1/completions' parallel lists and
// /v1/chat/completions' content entries, streamed with their deltas; echo with logprobs scores the
// prompt (what lm-evaluation-harness's loglikelihood requests send: echo, logprobs 1, max_tokens 0
// or 1) against the all-position logits of a Session; out-of-range requests are 400s.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generate } from '../../src/eval/generate.ts';
import { loadModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { ChatTemplate } from '../../src/serve/chat-template.ts';
import { cpuStepBackend } from '../../src/serve/generate-continuous.ts';
import { tokenLogprob } from '../../src/serve/logprobs.ts';
import { CompletionServer } from '../../src/serve/server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORIES = path.join(ROOT, '../shared/models/stories260K');
const skip = fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES}`;

test('tokenLogprob: log-softmax at the id, the top ids best first (ties: lower id first)', () => {
  const logits = new Float32Array([1, 3, 2, 3, -1]);
  const z = Math.log([1, 3, 2, 3, -1].reduce((a, v) => a + Math.exp(v), 0));
  const r = tokenLogprob(logits, 2, 3);
  assert.equal(r.id, 2);
  assert.ok(Math.abs(r.logprob - (2 - z)) < 1e-12);
  assert.deepEqual(r.top.map((x) => x.id), [1, 3, 2]);
  assert.ok(r.top.every((x) => Math.abs(x.logprob - (logits[x.id]! - z)) < 1e-12));
  assert.deepEqual(tokenLogprob(logits, 0, 0).top, []);
  assert.deepEqual(tokenLogprob(logits, 0, 9).top.map((x) => x.id), [1, 3, 2, 0, 4], 'more asked than ids: all of them');
});

test('serve: logprobs of completions and chat = the model\'s log-softmax; 400s', { skip, timeout: 120_000 }, async () => {
  const model = loadModel(STORIES), tok = model.tokenizer;
  const template = new ChatTemplate('{% for m in messages %}{{ m.content }}{% endfor %}', 'test template');
  const server = new CompletionServer(cpuStepBackend(model, 2, 256, 6), tok, { model: 'stories260K', chatTemplate: template });
  const port = await server.listen(0);
  const post = (route: string, body: unknown) => fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', body: JSON.stringify(body) });
  try {
    const prompt = tok.encode('Once upon a time', { addBos: true });
    for (const temperature of [0, 0.9]) {
      const r = await post('/v1/completions', { prompt, max_tokens: 6, temperature, seed: 4, logprobs: 3, stop_at_eos: false }).then((x) => x.json());
      const lp = r.choices[0].logprobs;
      assert.equal(lp.tokens.length, 6);
      assert.equal(lp.tokens.join(''), r.choices[0].text);
      assert.deepEqual(lp.text_offset, lp.tokens.map((_: string, i: number) => lp.tokens.slice(0, i).join('').length));
      const ids = generate(model, prompt, { maxNew: 6, temperature, topP: 1, seed: 4 }).ids;  // the server's ids (= generate alone)
      const session = new Session(model);
      let logits = session.forward(prompt);  // then one id at a time, as generate and the engine feed them
      for (let i = 0; i < 6; i++) {
        const want = tokenLogprob(logits, ids[i]!, 3);
        logits = session.forward([ids[i]!]);
        assert.ok(Math.abs(lp.token_logprobs[i] - want.logprob) < 1e-12, `token ${i}: ${lp.token_logprobs[i]} against ${want.logprob}`);
        const top = Object.values(lp.top_logprobs[i]) as number[];
        assert.ok(top.length >= 1 && top.length <= 3 && top.every((v, j) => j === 0 || v <= top[j - 1]!));
        assert.ok(Math.abs(top[0]! - want.top[0]!.logprob) < 1e-12);
        if (temperature === 0) assert.equal(lp.token_logprobs[i], top[0], `greedy token ${i} is its position's best`);
      }
      session.dispose();
    }
    const chat = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 5, temperature: 0,
      logprobs: true, top_logprobs: 2, stop_at_eos: false }).then((x) => x.json());
    const content = chat.choices[0].logprobs.content;
    assert.equal(content.length, 5);
    assert.equal(content.map((c: { token: string }) => c.token).join(''), chat.choices[0].message.content);
    for (const c of content) {
      assert.deepEqual(c.bytes, [...Buffer.from(c.token, 'utf8')]);
      assert.equal(c.top_logprobs.length, 2);
      assert.equal(c.logprob, c.top_logprobs[0].logprob, 'greedy: the best');
    }
    const plain = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 5, temperature: 0, stop_at_eos: false }).then((x) => x.json());
    assert.equal(plain.choices[0].logprobs, undefined, 'none unless asked');
    assert.equal(plain.choices[0].message.content, chat.choices[0].message.content);

    // streamed: each chunk carries the tokens whose text starts in it; together, the unstreamed lists
    type Answer = { choices: { logprobs: { token_logprobs?: number[]; content?: { logprob: number }[] } }[] };
    const values = (c: Answer) => c.choices[0]!.logprobs.token_logprobs ?? c.choices[0]!.logprobs.content!.map((x) => x.logprob);
    for (const [route, extra] of [
      ['/v1/completions', { prompt, logprobs: 2 }],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Once upon a time' }], logprobs: true, top_logprobs: 2 }],
    ] as const) {
      const list = values;
      const body = { ...extra, max_tokens: 8, temperature: 0, stop_at_eos: false };
      const whole = await post(route, body).then((x) => x.json());
      const events = (await (await post(route, { ...body, stream: true })).text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Answer);
      assert.deepEqual(chunks.flatMap(list), list(whole as Answer), `${route}: streamed logprobs = unstreamed`);
    }

    // echo: the prompt's tokens first (the first with null), each scored by the row before it
    const scoring = tok.encode('Tom had a red ball and a big dog', { addBos: true });
    const all = (() => {
      const sess = new Session(model);
      try { return sess.forward(scoring, { allLogits: true }); } finally { sess.dispose(); }
    })();
    const V = all.length / scoring.length;
    for (const maxTokens of [0, 1]) {
      const r = await post('/v1/completions', { prompt: scoring, echo: true, logprobs: 1, max_tokens: maxTokens, temperature: 0 }).then((x) => x.json());
      const lp = r.choices[0].logprobs;
      assert.equal(lp.tokens.length, scoring.length + maxTokens);
      assert.equal(lp.token_logprobs[0], null);
      assert.equal(lp.top_logprobs[0], null);
      for (let t = 1; t < scoring.length; t++) {
        const want = tokenLogprob(all.subarray((t - 1) * V, t * V), scoring[t]!, 1);
        assert.ok(Math.abs(lp.token_logprobs[t] - want.logprob) < 1e-12, `prompt token ${t}`);
        assert.ok(Math.abs((Object.values(lp.top_logprobs[t]) as number[])[0]! - want.top[0]!.logprob) < 1e-12);
      }
      assert.ok(r.choices[0].text.startsWith(tok.decode(scoring)), 'the text starts with the prompt');
      assert.equal(r.usage.completion_tokens, maxTokens);
      if (maxTokens === 1) {
        // the generated token after the prompt: the last row's best (the batcher prefilled the prompt in
        // 6-token chunks, the scoring in one: the same sums in another float order, hence 1e-5)
        const last = tokenLogprob(all.subarray((scoring.length - 1) * V), 0, 1).top[0]!;
        assert.ok(Math.abs(lp.token_logprobs[scoring.length] - last.logprob) < 1e-5, `the new token: ${lp.token_logprobs[scoring.length]} against ${last.logprob}`);
      }
    }
    const echoed = await post('/v1/completions', { prompt: 'The sun', echo: true, max_tokens: 4, temperature: 0, stop_at_eos: false }).then((x) => x.json());
    const plain4 = await post('/v1/completions', { prompt: 'The sun', max_tokens: 4, temperature: 0, stop_at_eos: false }).then((x) => x.json());
    assert.equal(echoed.choices[0].text, tok.decode(tok.encode('The sun', { addBos: true })) + plain4.choices[0].text, 'echo without logprobs: prompt + completion');
    const streamed = await (await post('/v1/completions', { prompt: 'The sun', echo: true, max_tokens: 4, temperature: 0, stream: true, stop_at_eos: false })).text();
    const texts = streamed.split('\n\n').filter(Boolean).slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')).choices[0].text as string);
    assert.equal(texts.join(''), echoed.choices[0].text, 'streamed echo: the prompt in the first chunk');

    const bad = async (route: string, body: unknown, re: RegExp) => {
      const r = await post(route, body);
      assert.equal(r.status, 400);
      assert.match((await r.json()).error.message, re);
    };
    await bad('/v1/completions', { prompt, logprobs: 6 }, /"logprobs" must be an integer from 0 to 5/);
    await bad('/v1/completions', { prompt, max_tokens: 0 }, /"max_tokens" must be an integer ≥ 1/);
    await bad('/v1/completions', { prompt, echo: 'yes' }, /"echo" must be true or false/);
    await bad('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, /"top_logprobs" needs "logprobs": true/);
    await bad('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], logprobs: 'yes' }, /"logprobs" must be true or false/);
    await bad('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 21 }, /"top_logprobs" must be an integer from 0 to 20/);
  } finally {
    await server.close();
  }
});
