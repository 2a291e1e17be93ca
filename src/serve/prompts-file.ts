// The prompts of `intscale batch`: a text file of one prompt per line (blank lines skipped; \n inside
// a prompt is not possible there), or a .jsonl file of one JSON value per line, either a string or
// an object with a string "prompt" (other fields ignored). Every problem is one line naming the file
// (and the line).
import fs from 'node:fs';
import { fail } from '../core/errors.ts';
import { withFsErrors } from '../core/fs-errors.ts';

export function readPromptsFile(file: string): string[] {
  const text = withFsErrors(file, () => fs.readFileSync(file, 'utf8'), 'read the prompts');
  const jsonl = file.endsWith('.jsonl');
  const prompts: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    if (!jsonl) {
      prompts.push(line);
      return;
    }
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      fail(`${file}:${i + 1}`, `not JSON (${(e as Error).message})`);
    }
    const prompt = typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { prompt?: unknown }).prompt === 'string'
      ? (v as { prompt: string }).prompt : undefined;
    if (prompt === undefined) fail(`${file}:${i + 1}`, 'expected a JSON string or an object with a string "prompt"');
    prompts.push(prompt);
  });
  if (prompts.length === 0) fail(file, 'no prompts (one per line, or JSON lines with a "prompt")');
  return prompts;
}
