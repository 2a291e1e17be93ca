// /v1/chat/completions (src/serve/server.ts over chat-template.ts) on stories260K (CPU engine): the
// messages rendered by the chat template, then exactly what /v1/completions answers for those
// prompt ids (greedy and seeded, streamed as chat.completion.chunk deltas that add up to the same
// content); no template, bad messages and a template's raise_exception are 400s with a message.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/model/load.ts';
import { ChatTemplate } from '../../src/serve/chat-template.ts';
import { cpuStepBackend } from '../../src/serve/generate-continuous.ts';
import { CompletionServer } from '../../src/serve/server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORIES = path.join(ROOT, '../shared/models/stories260K');
const skip = fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES}`;

// a Zephyr-style template (as HF ships them), with a guard that calls raise_exception
const TEMPLATE = "{{ bos_token }}{% for m in messages %}{% if m.role not in ['system', 'user', 'assistant'] %}" +
  "{{ raise_exception('unknown role ' + m.role) }}{% endif %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}" +
  '{% if add_generation_prompt %}<|assistant|>\n{% endif %}';

test('serve: chat completions = completions of the rendered prompt; streamed deltas; 400s', { skip, timeout: 120_000 }, async () => {
  const model = loadModel(STORIES), tok = model.tokenizer;
  const template = new ChatTemplate(TEMPLATE, 'test template', { bos: '<s>', eos: '</s>' });
  const messages = [{ role: 'system', content: 'You tell short stories.' }, { role: 'user', content: 'Once upon a time' }];
  assert.equal(template.render(messages), '<s><|system|>\nYou tell short stories.</s>\n<|user|>\nOnce upon a time</s>\n<|assistant|>\n');
  const ids = template.promptIds(messages, tok);
  assert.deepEqual(ids, [tok.bosId!, ...tok.encode('<|system|>\nYou tell short stories.</s>\n<|user|>\nOnce upon a time</s>\n<|assistant|>\n', { addBos: false })],
    'the leading BOS text is the BOS id');
  const noSpecials = new ChatTemplate('{{ messages[0].content }}', 'no specials');
  assert.deepEqual(noSpecials.promptIds([{ role: 'user', content: 'Tom had a ball' }], tok), tok.encode('Tom had a ball', { addBos: true }),
    'no BOS text known (llama2.c): the BOS id first, as for every other prompt');

  const backend = cpuStepBackend(model, 2, 256, 6);
  const server = new CompletionServer(backend, tok, { model: 'stories260K', chatTemplate: template });
  const bare = new CompletionServer(cpuStepBackend(model, 1, 256, 6), tok, { model: 'stories260K' });
  const port = await server.listen(0), barePort = await bare.listen(0);
  const post = (route: string, body: unknown, p = port) => fetch(`http://127.0.0.1:${p}${route}`, { method: 'POST', body: JSON.stringify(body) });
  try {
    for (const options of [{ temperature: 0, seed: 0 }, { temperature: 0.8, seed: 5 }]) {
      const body = { ...options, max_tokens: 12, top_p: 0.9, stop_at_eos: false };
      const [chat, plain] = await Promise.all([post('/v1/chat/completions', { ...body, messages }).then((r) => r.json()),
        post('/v1/completions', { ...body, prompt: ids }).then((r) => r.json())]);
      assert.equal(chat.object, 'chat.completion');
      assert.match(chat.id, /^chatcmpl-/);
      assert.deepEqual(chat.choices[0].message, { role: 'assistant', content: plain.choices[0].text }, JSON.stringify(options));
      assert.equal(chat.choices[0].finish_reason, 'length');
      assert.deepEqual(chat.usage, plain.usage);
    }
    const plain = await post('/v1/completions', { prompt: ids, max_tokens: 12, temperature: 0, stop_at_eos: false }).then((r) => r.json());
    const two = await post('/v1/chat/completions', { messages, n: 2, max_tokens: 12, temperature: 0.8, seed: 5, stop_at_eos: false }).then((r) => r.json());
    const seeded = await post('/v1/completions', { prompt: ids, n: 2, max_tokens: 12, temperature: 0.8, seed: 5, stop_at_eos: false }).then((r) => r.json());
    assert.deepEqual(two.choices.map((c: { index: number; message: { content: string } }) => [c.index, c.message.content]),
      seeded.choices.map((c: { index: number; text: string }) => [c.index, c.text]), 'n choices: the completions of the same samples');
    const stream = await post('/v1/chat/completions', { messages, max_tokens: 12, temperature: 0, stream: true, stop_at_eos: false });
    const events = (await stream.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'the first delta names the role');
    assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), plain.choices[0].text, 'the deltas add up to the content');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');

    const bad = async (body: unknown, re: RegExp, p = port) => {
      const r = await post('/v1/chat/completions', body, p);
      assert.equal(r.status, 400);
      assert.match((await r.json()).error.message, re);
    };
    await bad({ messages: [] }, /"messages" must be a non-empty array/);
    await bad({ messages: [{ role: 'user' }] }, /"messages" must be/);
    await bad({ messages: 'hi' }, /"messages" must be/);
    await bad({ messages: [{ role: 'robot', content: 'hi' }] }, /the chat template refused the messages: unknown role robot/);
    await bad({ messages }, /no chat template .*--chat-template/, barePort);
    // content as a list of text parts (OpenAI's other form) is the same message
    const parts = await post('/v1/chat/completions', { messages: [messages[0], { role: 'user', content: [{ type: 'text', text: 'Once upon ' }, { type: 'text', text: 'a time' }] }],
      max_tokens: 12, temperature: 0, stop_at_eos: false }).then((r) => r.json());
    assert.equal(parts.choices[0].message.content, plain.choices[0].text);
  } finally {
    await server.close();
    await bare.close();
  }
});

test('loadChatTemplate: --chat-template file, tokenizer_config.json chat_template (string or named list), none; one-line errors', async () => {
  const { loadChatTemplate } = await import('../../src/serve/chat-template.ts');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-chat-'));
  try {
    const cfg = path.join(dir, 'tokenizer_config.json'), file = path.join(dir, 'chat.jinja');
    const msgs = [{ role: 'user', content: 'hi' }];
    fs.writeFileSync(cfg, JSON.stringify({ bos_token: { content: '<s>', lstrip: false }, eos_token: '</s>', chat_template: '{{ bos_token }}{{ messages[0].content }}{{ eos_token }}' }));
    assert.equal(loadChatTemplate(cfg)!.render(msgs), '<s>hi</s>', 'AddedToken objects give their content');
    fs.writeFileSync(cfg, JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D{{ messages | length }}' }] }));
    assert.equal(loadChatTemplate(cfg)!.render(msgs), 'D1');
    fs.writeFileSync(file, '[{{ messages[0].role }}]');
    assert.equal(loadChatTemplate(cfg, file)!.render(msgs), '[user]', 'the file wins');
    fs.writeFileSync(cfg, JSON.stringify({ bos_token: '<s>' }));
    assert.equal(loadChatTemplate(cfg), undefined);
    assert.equal(loadChatTemplate(undefined), undefined);
    const oneLine = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => re.test(e.message) && !e.message.includes('\n'));
    oneLine(() => loadChatTemplate(cfg, path.join(dir, 'nope.jinja')), /nope\.jinja: cannot read the chat template/);
    fs.writeFileSync(file, '{% for m in messages %}unclosed');
    oneLine(() => loadChatTemplate(cfg, file), /chat\.jinja: the chat template does not parse/);
    fs.writeFileSync(cfg, JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }] }));
    oneLine(() => loadChatTemplate(cfg), /tokenizer_config\.json: chat_template is neither a string nor a list with a template named "default"/);
    fs.writeFileSync(cfg, '{ nope');
    oneLine(() => loadChatTemplate(cfg), /tokenizer_config\.json: not valid JSON/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
