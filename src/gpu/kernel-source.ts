// Reading a kernel source for NVRTC: `#include "file"` lines (paths relative to the including file)
// are replaced by the file's text, recursively, with #line markers so compile errors still name the
// right file and line. NVRTC then needs no include path, and the compile cache — keyed by the source
// text — sees every change to a shared header. `#include <...>` lines are left alone.
import fs from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.ts';

const LOCAL_INCLUDE = /^\s*#\s*include\s+"([^"]+)"\s*$/;

/**
 * The text of `file` with its quoted includes inlined (cycles and unreadable files: one-line
 * errors; `name`, default `file`, is how errors about the top-level file call it).
 */
export function readKernelSource(file: string, name = file): string {
  return expand(file, [], name);
}

function expand(file: string, stack: string[], topName: string): string {
  const where = stack.length ? stack[stack.length - 1]! : topName;
  const full = path.resolve(file);
  if (stack.includes(full)) fail(where, `include cycle: ${[...stack, full].map((f) => path.basename(f)).join(' -> ')}`);
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (stack.length) fail(where, `cannot read include "${path.basename(file)}": ${code}`);
    fail(topName, `cannot read kernel source: ${code}`);
  }
  const lines = text.split('\n');
  const out: string[] = [];
  const name = path.basename(full);
  lines.forEach((line, i) => {
    const m = LOCAL_INCLUDE.exec(line);
    if (!m) {
      out.push(line);
      return;
    }
    const inc = path.join(path.dirname(full), m[1]!);
    out.push(`#line 1 "${path.basename(inc)}"`, expand(inc, [...stack, full], topName), `#line ${i + 2} "${name}"`);
  });
  return out.join('\n');
}
