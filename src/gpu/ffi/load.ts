// Finds and opens a shared library (libcuda, NVRTC, cuBLASLt) by trying a list of names, first
// through the dynamic loader's own search and then in the CUDA toolkit's lib folders and every
// LD_LIBRARY_PATH entry. Returns the handle and the path that worked, or every path tried.
import fs from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';

export type LibraryHandle = ReturnType<typeof koffi.load>;

export type LoadResult =
  | { ok: true; lib: LibraryHandle; path: string }
  | { ok: false; tried: string[]; reason: string };

/** Folders searched after the loader's default search, in order. */
export function librarySearchDirs(): string[] {
  const dirs: string[] = [];
  for (const d of (process.env.LD_LIBRARY_PATH ?? '').split(':')) if (d) dirs.push(d);
  const cudaHome = process.env.CUDA_HOME ?? process.env.CUDA_PATH;
  if (cudaHome) dirs.push(path.join(cudaHome, 'targets/x86_64-linux/lib'), path.join(cudaHome, 'lib64'));
  dirs.push('/usr/local/cuda/targets/x86_64-linux/lib', '/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu',
    '/usr/local/nvidia/lib64', '/usr/lib64');
  return [...new Set(dirs)];
}

/** Try each name with the loader's search, then each name in each search dir. */
export function loadLibrary(names: string[]): LoadResult {
  const tried: string[] = [];
  let reason = 'not found';
  for (const name of names) {
    tried.push(name);
    try {
      return { ok: true, lib: koffi.load(name), path: resolvedPath(name) ?? name };
    } catch (err) {
      reason = firstLine(err);
    }
  }
  for (const dir of librarySearchDirs()) {
    for (const name of names) {
      const full = path.join(dir, name);
      if (!fs.existsSync(full)) continue;
      tried.push(full);
      try {
        return { ok: true, lib: koffi.load(full), path: full };
      } catch (err) {
        reason = firstLine(err);
      }
    }
  }
  return { ok: false, tried, reason };
}

/** Where the loader found a library loaded by bare name (from /proc/self/maps), if visible. */
function resolvedPath(name: string): string | undefined {
  try {
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    const base = name.replace(/\.so.*$/, '.so');
    for (const line of maps.split('\n')) {
      const file = line.slice(line.indexOf('/'));
      if (line.includes('/') && path.basename(file).startsWith(base)) return file.trim();
    }
  } catch {
    // not Linux or not readable: the bare name is good enough
  }
  return undefined;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

type LooseLibrary = { func(name: string, result: string, args: unknown[]): unknown };

/** Declare the first of `names` that the library exports (for symbols renamed across versions). */
export function funcAny(lib: LibraryHandle, names: string[], result: string, args: unknown[]) {
  let last: unknown;
  for (const name of names) {
    try {
      return (lib as unknown as LooseLibrary).func(name, result, args);
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
