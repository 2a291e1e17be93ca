// Golden test: llama2.c's stories260K, greedy from BOS for 200 positions (run.c -t 0.0 -n 200),
// must reproduce llama2.c's reference text exactly (shared/models/stories260K/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/io/model-dir.ts';
import { generate } from '../../src/eval/generate.ts';

const DIR = fileURLToPath(new URL('../../../shared/models/stories260K', import.meta.url));
const skip = fs.existsSync(DIR) ? false : `shared model missing: ${DIR} (needs ../shared next to the repo)`;

const REFERENCE = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily\'s mom said, "Lily, let\'s go to the park." Lily was sad and didn\'t know what to do. She said, "I want to play with your ball, but I can\'t find it."\nLily was sad and didn\'t know what to do. She said, "I\'m sorry, Lily. I didn\'t know what to do."\nLily didn\'t want to help her mom, so she';

test('stories260K: greedy 200 steps from BOS reproduces llama2.c exactly', { skip }, () => {
  const model = loadModel(DIR);
  assert.equal(model.format, 'llama2c');
  assert.equal(model.config.dim, 64);
  assert.equal(model.config.rope.layout, 'interleaved');
  // run.c -n 200: forwards at positions 0..199, each emitting one token (stops early only at BOS)
  const r = generate(model, [1], { maxNew: 200, temperature: 0, stopIds: [1] });
  assert.equal(r.ids.length, 200);
  assert.equal(model.tokenizer.decode([1, ...r.ids]), REFERENCE);
});

test('stories260K tokenizer: run.c encoding round-trips and merges by score', { skip }, () => {
  const { tokenizer } = loadModel(DIR);
  const text = 'Once upon a time, Lily saw a big, red ball.';
  const ids = tokenizer.encode(text, { addBos: true });
  assert.equal(ids[0], 1);
  assert.ok(ids.length < text.length / 2, `BPE merges happened (${ids.length} ids)`);
  assert.equal(tokenizer.decode(ids), text);
  // code points outside the 512-token vocab fall back to byte tokens (<0xXX> = byte + 3) and decode back
  const odd = tokenizer.encode('a 😀 ü', { addBos: true });
  assert.ok(odd.some((id) => id >= 3 && id < 259), 'byte tokens used');
  assert.equal(tokenizer.decode(odd), 'a 😀 ü');
});
