// TextStreamer: streamed chunks concatenate to the full decode, and a multi-byte character split
// over several tokens is held back until complete (never printed as U+FFFD).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextStreamer, type Tokenizer } from '../../src/io/tokenizer.ts';
import { Rng } from '../../src/core/rng.ts';

/** A byte-level tokenizer: id = one UTF-8 byte. */
const bytes: Tokenizer = {
  bosId: undefined, eosId: undefined, vocabSize: 256,
  encode: (text) => [...Buffer.from(text, 'utf8')],
  decode: (ids) => Buffer.from(ids).toString('utf8'),
  decodeToken: (_prev, id) => Buffer.from([id]).toString('utf8'),
};

test('chunks add up to the decoded text, split characters are held back', () => {
  const text = 'héllo wörld 😀 ✓ end';
  const ids = bytes.encode(text);
  const s = new TextStreamer(bytes);
  const chunks = ids.map((id) => s.push(id));
  chunks.push(s.flush());
  assert.equal(chunks.join(''), text);
  for (const c of chunks) assert.ok(!c.includes('\uFFFD'), JSON.stringify(c));
  // the 4 bytes of 😀: nothing printed until the last one
  const at = Buffer.from('héllo wörld ', 'utf8').length;
  assert.deepEqual(chunks.slice(at, at + 4), ['', '', '', '😀']);
});

test('a prompt is not re-emitted; random byte soup still adds up', () => {
  const s = new TextStreamer(bytes, bytes.encode('prompt: '));
  assert.equal(s.push(0x61), 'a');
  const rng = new Rng(4);
  const ids = Array.from({ length: 300 }, () => rng.int(0, 255));
  const t = new TextStreamer(bytes);
  const out = ids.map((id) => t.push(id)).join('') + t.flush();
  assert.equal(out, bytes.decode(ids));
});
