// Model detection and loading errors: one line naming the path, for every kind of wrong input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectModel } from '../../src/io/model-dir.ts';
import { loadModel } from '../../src/model/load.ts';
import { IntscaleError } from '../../src/core/errors.ts';

const STORIES = fileURLToPath(new URL('../../../shared/models/stories260K', import.meta.url));

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-model-dir-'));
}

function failsWith(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof IntscaleError && re.test(e.message) && !e.message.includes('\n'));
}

test('missing path, empty directory, stray file', () => {
  const dir = tmpDir();
  failsWith(() => loadModel(path.join(dir, 'nope')), /nope: no such file or directory/);
  failsWith(() => loadModel(dir), /not a model directory: no config\.json and no llama2\.c checkpoint/);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
  failsWith(() => loadModel(path.join(dir, 'notes.txt')), /not a model: expected a directory or a llama2\.c \.bin/);
});

test('a llama2.c header with the wrong file size, and one without a tokenizer', () => {
  const dir = tmpDir();
  const header = Buffer.alloc(28 + 4000 * 4);
  [64, 172, 5, 8, 4, 512, 512].forEach((v, i) => header.writeInt32LE(v, i * 4));
  const bin = path.join(dir, 'model.bin');
  fs.writeFileSync(bin, header);
  failsWith(() => loadModel(bin, { tokenizerPath: bin }), /should be 1056540 bytes for its header, is 16028/);
  failsWith(() => loadModel(bin), /without a tokenizer \.bin/);
  const junk = path.join(dir, 'junk.bin');
  fs.writeFileSync(junk, Buffer.from('definitely not a checkpoint at all, just text'));
  failsWith(() => loadModel(junk, { tokenizerPath: bin }), /not a llama2\.c checkpoint \(implausible header/);
});

test('an HF directory with a bad config or no tokenizer', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['BertModel'] }));
  failsWith(() => loadModel(dir), /config\.json: unsupported architecture BertModel/);
  fs.writeFileSync(path.join(dir, 'config.json'), '{"architectures": [');
  failsWith(() => loadModel(dir), /config\.json: not valid JSON/);
});

test('llama2.c: a directory or the .bin itself; the tokenizer is found next to it',
  { skip: fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES}` }, () => {
    const d = detectModel(STORIES);
    assert.equal(d.format, 'llama2c');
    assert.ok(d.format === 'llama2c' && d.checkpoint.endsWith('stories260K.bin') && d.tokenizer?.endsWith('tok512.bin'));
    const f = detectModel(path.join(STORIES, 'stories260K.bin'));
    assert.ok(f.format === 'llama2c' && f.tokenizer?.endsWith('tok512.bin'));
  });
