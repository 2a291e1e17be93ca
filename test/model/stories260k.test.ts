// Golden test: llama2.c's stories260K, greedy from BOS for 200 positions (run.c -t 0.0 -n 200),
// must reproduce llama2.c's reference text exactly (shared/models/stories260K/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/model/load.ts';
import { generate } from '../../src/eval/generate.ts';
import { loadLlama2cTokenizer } from '../../src/io/tokenizer.ts';
import { Rng } from '../../src/core/rng.ts';

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

/** run.c's encode, literally (quadratic): the independent reference for the fast merge. */
function runCEncode(file: string, text: string): number[] {
  const buf = fs.readFileSync(file);
  const pieces: string[] = [], scores: number[] = [];
  let off = 4;
  for (let i = 0; i < 512; i++) {
    scores.push(buf.readFloatLE(off));
    const len = buf.readInt32LE(off + 4);
    pieces.push(buf.subarray(off + 8, off + 8 + len).toString('latin1'));
    off += 8 + len;
  }
  const lookup = (s: string) => { const i = pieces.indexOf(s); return i < 0 ? -1 : i; };
  const tokens: number[] = [1];
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length) tokens.push(lookup(' '));
  for (let i = 0; i < bytes.length;) {
    let len = 1;
    if (bytes[i]! >= 0xc0) while (i + len < bytes.length && len < 4 && (bytes[i + len]! & 0xc0) === 0x80) len++;
    const id = lookup(bytes.subarray(i, i + len).toString('latin1'));
    if (id >= 0) tokens.push(id); else for (const b of bytes.subarray(i, i + len)) tokens.push(b + 3);
    i += len;
  }
  for (;;) {
    let best = -1e10, bestId = -1, bestIdx = -1;
    for (let i = 1; i < tokens.length - 1; i++) {
      const id = lookup(pieces[tokens[i]!]! + pieces[tokens[i + 1]!]!);
      if (id >= 0 && scores[id]! > best) { best = scores[id]!; bestId = id; bestIdx = i; }
    }
    if (bestIdx < 0) return tokens;
    tokens.splice(bestIdx, 2, bestId);
  }
}

test('stories260K tokenizer: the O(n log n) merge equals run.c\'s quadratic loop on random text', { skip }, () => {
  const file = `${DIR}/tok512.bin`;
  const tok = loadLlama2cTokenizer(file, 512);
  const rng = new Rng(21);
  const alphabet = [...'abcdefghijklmnopqrstuvwxyz    ,.!?\'"\nTLOé😀'];
  for (let trial = 0; trial < 30; trial++) {
    const text = Array.from({ length: rng.int(0, 120) }, () => alphabet[rng.int(0, alphabet.length - 1)]).join('');
    assert.deepEqual(tok.encode(text, { addBos: true }), runCEncode(file, text), JSON.stringify(text));
  }
  // and it is fast on a long text (the quadratic loop would take minutes)
  const long = 'Once upon a time, there was a little girl named Lily. '.repeat(4000);
  const t0 = performance.now();
  const ids = tok.encode(long, { addBos: false });
  assert.ok(performance.now() - t0 < 5000, 'long text encodes in seconds');
  assert.equal(tok.decode([1, ...ids]), long);
});
