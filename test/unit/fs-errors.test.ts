// Issue 9, class 5: the one error path for file-system failures. Every errno code the issue lists
// becomes one line naming the file and the problem (the destination of a copy that ran out of
// space, the source of one that cannot be read); anything else reaching the CLI is one line too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IntscaleError } from '../../src/core/errors.ts';
import { fsErrorMessage, withFsErrors } from '../../src/core/fs-errors.ts';
import { errorLine } from '../../src/cli/error-line.ts';

function errno(code: string, syscall: string, p: string, dest?: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: something, ${syscall} '${p}'`) as NodeJS.ErrnoException & { dest?: string };
  Object.assign(e, { code, syscall, path: p, ...(dest ? { dest } : {}) });
  return e;
}

test('each errno code of the issue becomes one line naming the file and the problem', () => {
  const problems: Record<string, RegExp> = {
    ENOSPC: /no space left on the device \(ENOSPC\)$/, EACCES: /permission denied \(EACCES\)$/, ENOENT: /no such file or directory \(ENOENT\)$/,
    ENOTEMPTY: /directory not empty .*\(ENOTEMPTY\)$/, EEXIST: /already exists \(EEXIST\)$/, ENOTDIR: /not a directory \(ENOTDIR\)$/,
    EPIPE: /the reader closed the pipe \(EPIPE\)$/, EWEIRD: /something, open '\/x\/y' \(EWEIRD\)$/,
  };
  for (const [code, pattern] of Object.entries(problems)) {
    assert.throws(() => withFsErrors('/x/y', () => { throw errno(code, 'open', '/x/y'); }, 'write the report'), (e: unknown) => {
      assert.ok(e instanceof IntscaleError);
      assert.ok(e.message.startsWith('/x/y: cannot write the report: '), e.message);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    assert.match(errorLine(errno(code, 'open', '/x/y')), /^\/x\/y: /);
  }
  // a copy: a full disk is about the destination, an unreadable source about the source
  assert.equal(fsErrorMessage(errno('ENOSPC', 'copyfile', '/src/tok.json', '/out/tok.json')), '/out/tok.json: no space left on the device (ENOSPC)');
  assert.equal(fsErrorMessage(errno('EACCES', 'copyfile', '/src/tok.json', '/out/tok.json')), '/src/tok.json: permission denied (EACCES)');
  assert.throws(() => withFsErrors(undefined, () => { throw errno('ENOSPC', 'copyfile', '/a', '/b'); }, 'copy a'), /^IntscaleError: \/b: cannot copy a: no space left/);
  // not an errno error: passes through withFsErrors; the CLI still prints one line
  assert.throws(() => withFsErrors('/x', () => { throw new TypeError('boom'); }), TypeError);
  assert.match(errorLine(new TypeError('boom\n  at somewhere')), /^internal error: boom \(please report it; INTSCALE_DEBUG=1 shows the stack\)$/);
  // an IntscaleError carrying a tool's log (an NVRTC compile error) is still one line
  assert.equal(errorLine(new IntscaleError('nvrtcCompileProgram(x.cu) failed: NVRTC_ERROR_COMPILATION: x.cu(3): error: bad\nx.cu(4): error: worse')),
    'nvrtcCompileProgram(x.cu) failed: NVRTC_ERROR_COMPILATION: x.cu(3): error: bad (+1 more lines; INTSCALE_DEBUG=1 prints them)');
});

test('real file-system failures map the same way', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-fserr-'));
  try {
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, 'x');
    assert.throws(() => withFsErrors(undefined, () => fs.mkdirSync(path.join(file, 'sub'))), /plain\/sub: a component of the path is not a directory \(ENOTDIR\)$/);
    assert.throws(() => withFsErrors(undefined, () => fs.mkdirSync(file)), /plain: already exists \(EEXIST\)$/);
    assert.throws(() => withFsErrors(undefined, () => fs.readFileSync(path.join(dir, 'none'))), /none: no such file or directory \(ENOENT\)$/);
    fs.mkdirSync(path.join(dir, 'full'));
    fs.writeFileSync(path.join(dir, 'full', 'f'), 'x');
    fs.mkdirSync(path.join(dir, 'other'));
    assert.throws(() => withFsErrors(undefined, () => fs.renameSync(path.join(dir, 'other'), path.join(dir, 'full'))), /full: directory not empty/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
