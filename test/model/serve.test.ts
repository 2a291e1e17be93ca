// The completions server (src/serve/server.ts) on stories260K (CPU engine, 2 slots, 6-token steps):
// 5 concurrent requests (greedy and sampled with their own seeds, one by token ids) each get the
// text `generate` gives that prompt alone; the slots are shared; a stream's deltas add up to the
// same text and end with the finish reason and [DONE]; bad bodies are 400s with a message; a client
// that goes away mid-stream frees its slot (the next request still completes); stop strings end the
// text before them.
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

test('serve: concurrent completions = generate alone; streaming; 400s; a vanished client frees its slot', { skip, timeout: 120_000 }, async () => {
  const model = loadModel(STORIES), tok = model.tokenizer;
  const backend = cpuStepBackend(model, 2, 256, 6);
  const server = new CompletionServer(backend, tok, { model: 'stories260K' });
  const port = await server.listen(0);
  const url = `http://127.0.0.1:${port}/v1/completions`;
  const post = (body: unknown) => fetch(url, { method: 'POST', body: JSON.stringify(body) });
  const alone = (prompt: number[], maxNew: number, temperature: number, seed: number) => {
    const ids = generate(model, prompt, { maxNew, temperature, topP: 0.9, seed }).ids;
    const s = new TextStreamer(tok, prompt);
    return ids.map((id) => s.push(id)).join('') + s.flush();
  };
  try {
    const specs = [
      { prompt: 'Once upon a time', temperature: 0, seed: 0 }, { prompt: 'Tom had a red ball', temperature: 0.8, seed: 3 },
      { prompt: 'The sun', temperature: 0, seed: 0 }, { prompt: 'Lily and her mom went to the big park to play', temperature: 0.9, seed: 7 },
      { prompt: tok.encode('A dog', { addBos: true }), temperature: 0, seed: 0 },
    ];
    const replies = await Promise.all(specs.map((s) => post({ ...s, max_tokens: 14, top_p: 0.9, stop_at_eos: false }).then((r) => r.json())));
    replies.forEach((r, i) => {
      const s = specs[i]!, ids = typeof s.prompt === 'string' ? tok.encode(s.prompt, { addBos: true }) : s.prompt;
      assert.equal(r.object, 'text_completion');
      assert.equal(r.choices[0].text, alone(ids, 14, s.temperature, s.seed), `request ${i}`);
      assert.equal(r.choices[0].finish_reason, 'length');
      assert.deepEqual(r.usage, { prompt_tokens: ids.length, completion_tokens: 14, total_tokens: ids.length + 14 });
    });
    assert.ok(server.stats.sequenceSteps / server.stats.steps > 1.3, `requests shared the steps (${JSON.stringify(server.stats)})`);

    const stream = await post({ prompt: 'Once upon a time', max_tokens: 14, temperature: 0, stream: true, stop_at_eos: false });
    assert.match(stream.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = (await stream.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), replies[0].choices[0].text, 'the deltas add up to the text');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');

    // stop strings: the text ends before the first one (not returned), finish "stop"; streamed the same
    const full = replies[0].choices[0].text as string, cut = full.indexOf(' named');
    assert.ok(cut > 0, full);
    for (const streamIt of [false, true]) {
      const r = await post({ prompt: 'Once upon a time', max_tokens: 14, temperature: 0, stop: ['zzz', ' named'], stream: streamIt, stop_at_eos: false });
      const text = streamIt
        ? (await r.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0].text).join('')
        : (await r.json()).choices[0].text;
      assert.equal(text, full.slice(0, cut), `stop string (${streamIt ? 'stream' : 'one reply'})`);
    }
    for (const [body, message] of [[{ prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, /"stop" must be/], [{}, /"prompt" must be a string/], [{ prompt: 'x', max_tokens: 0 }, /"max_tokens" must be an integer ≥ 1/],
      [{ prompt: 'x', temperature: -1 }, /"temperature" must be a number ≥ 0/], [{ prompt: [1, 100000] }, /token ids below 512/]] as const) {
      const r = await post(body);
      assert.equal(r.status, 400);
      assert.match((await r.json()).error.message, message);
    }
    const notJson = await fetch(url, { method: 'POST', body: '{' });
    assert.equal(notJson.status, 400);
    assert.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404);
    assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/health`)).json(), { status: 'ok' });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
    assert.equal(metric('intscale_requests_total'), server.stats.requests);
    assert.ok(metric('intscale_generated_tokens_total') >= 5 * 14 + 14, metrics);
    assert.equal(metric('intscale_requests_running'), 0);
    assert.equal(metric('intscale_slots'), 2);

    // two clients that go away mid-stream on a 2-slot server: the next request still completes
    for (let i = 0; i < 2; i++) {
      const ctl = new AbortController();
      const r = await fetch(url, { method: 'POST', body: JSON.stringify({ prompt: 'Once', max_tokens: 200, temperature: 0, stream: true, stop_at_eos: false }), signal: ctl.signal });
      const reader = r.body!.getReader();
      await reader.read();
      ctl.abort();
    }
    const before = server.stats.steps;
    const after = await (await post({ prompt: 'The sun', max_tokens: 14, temperature: 0, stop_at_eos: false })).json();
    assert.equal(after.choices[0].text, replies[2].choices[0].text);
    // (had the vanished requests kept their slots, this one would have waited ~200 of their steps)
    assert.ok(server.stats.steps - before < 60, `${server.stats.steps - before} steps for the last request`);
  } finally {
    await server.close();
    backend.close();
  }
});
