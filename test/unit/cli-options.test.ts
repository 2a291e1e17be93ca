// The CLI's integer options: plain decimal integers only, optional lower bound, one-line errors
// naming the flag; --group accepts exactly the supported group sizes; numbers (--temperature, --top-p)
// are plain decimals: '' is an error, not 0 (issue 9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IntscaleError } from '../../src/core/errors.ts';
import { parseGroupOption, parseIntOption, parseNumberOption } from '../../src/cli/options.ts';

test('integers parse; bounds and malformed text are refused with the flag named', () => {
  assert.equal(parseIntOption('--seed', '-3'), -3);
  assert.equal(parseIntOption('--ctx', '512', 2), 512);
  const refused = (fn: () => number, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof IntscaleError && pattern.test(e.message));
  for (const bad of ['', '2.5', '1e3', '0x10', ' 5', 'abc']) refused(() => parseIntOption('--seed', bad), /^--seed: expected an integer, got '/);
  refused(() => parseIntOption('--batch', '0', 1), /^--batch: must be a positive integer \(got 0\)$/);
  refused(() => parseIntOption('--batch', '1.5', 1), /^--batch: must be a positive integer \(got 1\.5\)$/);
  refused(() => parseIntOption('--ctx', '1', 2), /^--ctx: must be an integer ≥ 2 \(got 1\)$/);
});

test('--group takes 32, 64, 128, 256 and -1 only', () => {
  for (const g of [32, 64, 128, 256, -1]) assert.equal(parseGroupOption(String(g)), g);
  for (const bad of ['100', '0', '-2', 'x']) assert.throws(() => parseGroupOption(bad), IntscaleError);
});

test("numbers parse as decimals; '', words, Infinity and hex are refused", () => {
  for (const [text, value] of [['0', 0], ['0.7', 0.7], ['.5', 0.5], ['1e-3', 0.001], ['-1', -1], ['+2', 2], ['3.', 3]] as const) {
    assert.equal(parseNumberOption('--temperature', text), value);
  }
  for (const bad of ['', ' ', 'hot', 'Infinity', 'NaN', '0x10', '1,5', '1e', '.', '- 1']) {
    assert.throws(() => parseNumberOption('--top-p', bad), (e: unknown) => e instanceof IntscaleError && e.message === `--top-p: expected a number, got '${bad}'`);
  }
  assert.throws(() => parseIntOption('--max-new', '', 1), /^IntscaleError: --max-new: expected an integer, got ''$/);
});
