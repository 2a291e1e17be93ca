// The completions server against random request bodies (fast-check): every answer is a 200 with
// the documented shape or a 400 whose message is one line; never a 500, a hang or a crash, and the
// server still answers a good request afterwards. Bodies mix valid and invalid values of every
// field both routes read, and raw non-JSON text.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { loadModel } from '../../src/model/load.ts';
import { ChatTemplate } from '../../src/serve/chat-template.ts';
import { cpuStepBackend } from '../../src/serve/generate-continuous.ts';
import { CompletionServer } from '../../src/serve/server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORIES = path.join(ROOT, '../shared/models/stories260K');
const skip = fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES}`;

// a value of any JSON type, small
const anyValue = fc.oneof(fc.constant(null), fc.boolean(), fc.integer({ min: -5, max: 70 }), fc.double({ min: -2, max: 3, noNaN: true }),
  fc.string({ maxLength: 6 }), fc.array(fc.integer({ min: -2, max: 600 }), { maxLength: 4 }), fc.constant({}));
// a field: absent, a good value, or now and then anything (so some bodies are wholly valid)
const field = <T>(good: fc.Arbitrary<T>) => fc.option(fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: anyValue, weight: 1 }), { nil: undefined });

const completionBody = fc.record({
  prompt: field(fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 6 }),
    fc.array(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 3 }))),
  max_tokens: field(fc.integer({ min: 0, max: 6 })), temperature: field(fc.double({ min: 0, max: 2, noNaN: true })),
  top_p: field(fc.double({ min: 0.05, max: 1, noNaN: true })), seed: field(fc.nat(9)), n: field(fc.integer({ min: 1, max: 3 })),
  stop: field(fc.oneof(fc.string({ minLength: 1, maxLength: 3 }), fc.array(fc.string({ minLength: 1, maxLength: 3 }), { maxLength: 5 }))),
  logprobs: field(fc.integer({ min: 0, max: 5 })), echo: field(fc.boolean()), stream: field(fc.boolean()), stop_at_eos: field(fc.boolean()),
}, { requiredKeys: [] });

const chatBody = fc.record({
  messages: field(fc.array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'robot'), content: fc.string({ maxLength: 10 }) }), { maxLength: 3 })),
  max_tokens: field(fc.integer({ min: 1, max: 6 })), n: field(fc.integer({ min: 1, max: 2 })),
  logprobs: field(fc.boolean()), top_logprobs: field(fc.integer({ min: 0, max: 20 })), stream: field(fc.boolean()),
}, { requiredKeys: [] });

test('serve: random bodies get a 200 of the documented shape or a one-line 400, never a 500', { skip, timeout: 300_000 }, async (t) => {
  const model = loadModel(STORIES), tok = model.tokenizer;
  const template = new ChatTemplate("{% for m in messages %}{% if m.role == 'robot' %}{{ raise_exception('no robots') }}{% endif %}{{ m.content }}\n{% endfor %}", 'fuzz');
  const server = new CompletionServer(cpuStepBackend(model, 2, 48, 8), tok, { model: 'stories260K', chatTemplate: template, defaultMaxTokens: 4 });
  const port = await server.listen(0);
  const seen = { ok: 0, bad: 0, streamed: 0 };
  const send = async (route: string, raw: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', body: raw });
    const text = await r.text();
    if (r.status === 400) {
      seen.bad++;
      const message = (JSON.parse(text) as { error: { message: string } }).error.message;
      assert.ok(message.length > 0 && !message.includes('\n'), `one line: ${JSON.stringify(message)}`);
      return;
    }
    assert.equal(r.status, 200, `${route} ${raw} -> ${r.status} ${text}`);
    seen.ok++;
    if (r.headers.get('content-type')?.includes('text/event-stream')) {
      seen.streamed++;
      assert.ok(text.trimEnd().endsWith('data: [DONE]'), text);
      return;
    }
    const body = JSON.parse(text) as { choices: unknown[]; usage: { completion_tokens: number } };
    assert.ok(body.choices.length >= 1 && body.usage.completion_tokens >= 0);
  };
  try {
    await fc.assert(fc.asyncProperty(fc.oneof(
      completionBody.map((b) => ['/v1/completions', JSON.stringify(b)] as const),
      chatBody.map((b) => ['/v1/chat/completions', JSON.stringify(b)] as const),
      fc.tuple(fc.constantFrom('/v1/completions', '/v1/chat/completions'), fc.string({ maxLength: 20 })),  // raw text, mostly not JSON
    ), async ([route, raw]) => send(route, raw)), { numRuns: 150, seed: 7 });
    const ok = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'The sun', max_tokens: 3, temperature: 0 }) });
    assert.equal(ok.status, 200, 'still serving');
    assert.ok(seen.ok >= 20 && seen.bad >= 20 && seen.streamed >= 5, `both kinds of answer were exercised: ${JSON.stringify(seen)}`);
    t.diagnostic(`answers: ${JSON.stringify(seen)}`);
  } finally {
    await server.close();
  }
});
