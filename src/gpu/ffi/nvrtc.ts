// Mechanical koffi declarations for NVRTC (libnvrtc.so, runtime CUDA C++ → cubin compiler), plus
// `check()`, which turns an nvrtcResult other than NVRTC_SUCCESS into an error naming the call,
// the status string and (when given) the compile log. Needs no GPU and no driver.
import koffi from 'koffi';
import { IntscaleError } from '../../core/errors.ts';
import { GpuCallError, type Handle, type Out } from './cuda.ts';
import { loadLibrary, type LibraryHandle } from './load.ts';

export const NVRTC_LIBRARY_NAMES = ['libnvrtc.so', 'libnvrtc.so.13', 'libnvrtc.so.12'];

export interface NvrtcApi {
  path: string;
  nvrtcVersion(major: Out<number>, minor: Out<number>): number;
  nvrtcGetErrorString(status: number): string;
  nvrtcCreateProgram(out: Out<Handle>, src: string, name: string, numHeaders: number,
    headers: string[] | null, includeNames: string[] | null): number;
  nvrtcCompileProgram(prog: Handle, numOptions: number, options: string[]): number;
  nvrtcGetProgramLogSize(prog: Handle, out: Out<number>): number;
  nvrtcGetProgramLog(prog: Handle, buf: Buffer): number;
  nvrtcGetCUBINSize(prog: Handle, out: Out<number>): number;
  nvrtcGetCUBIN(prog: Handle, buf: Buffer): number;
  nvrtcDestroyProgram(prog: [Handle]): number;
}

let cached: { api: NvrtcApi } | { error: string; tried: string[] } | undefined;

/** Load NVRTC once; throws IntscaleError naming the paths tried when it is absent. */
export function nvrtc(): NvrtcApi {
  const r = tryNvrtc();
  if ('error' in r) throw new IntscaleError(r.error);
  return r.api;
}

export function tryNvrtc(): { api: NvrtcApi } | { error: string; tried: string[] } {
  cached ??= loadNvrtc();
  return cached;
}

function loadNvrtc(): { api: NvrtcApi } | { error: string; tried: string[] } {
  const found = loadLibrary(NVRTC_LIBRARY_NAMES);
  if (!found.ok) return { error: `NVRTC not found (tried ${found.tried.join(', ')})`, tried: found.tried };
  try {
    return { api: declare(found.lib, found.path) };
  } catch (err) {
    return { error: `NVRTC at ${found.path} lacks a needed function: ${(err as Error).message}`, tried: [found.path] };
  }
}

function declare(lib: LibraryHandle, path: string): NvrtcApi {
  const prog = koffi.pointer('nvrtcProgram', koffi.opaque());
  const out = (t: unknown) => koffi.out(koffi.pointer(t as string));
  const api = {
    path,
    nvrtcVersion: lib.func('nvrtcVersion', 'int', [out('int'), out('int')]),
    nvrtcGetErrorString: lib.func('nvrtcGetErrorString', 'const char *', ['int']),
    nvrtcCreateProgram: lib.func('nvrtcCreateProgram', 'int',
      [out(prog), 'const char *', 'const char *', 'int', 'const char **', 'const char **']),
    nvrtcCompileProgram: lib.func('nvrtcCompileProgram', 'int', [prog, 'int', 'const char **']),
    nvrtcGetProgramLogSize: lib.func('nvrtcGetProgramLogSize', 'int', [prog, out('size_t')]),
    nvrtcGetProgramLog: lib.func('nvrtcGetProgramLog', 'int', [prog, 'char *']),
    nvrtcGetCUBINSize: lib.func('nvrtcGetCUBINSize', 'int', [prog, out('size_t')]),
    nvrtcGetCUBIN: lib.func('nvrtcGetCUBIN', 'int', [prog, 'char *']),
    nvrtcDestroyProgram: lib.func('nvrtcDestroyProgram', 'int', [koffi.inout(koffi.pointer(prog))]),
  };
  return api as unknown as NvrtcApi;
}

/** NVRTC's version as "major.minor". */
export function nvrtcVersionString(api: NvrtcApi): string {
  const major: Out<number> = [null];
  const minor: Out<number> = [null];
  check(api.nvrtcVersion(major, minor), 'nvrtcVersion');
  return `${major[0]}.${minor[0]}`;
}

/** Throw GpuCallError unless `status` is NVRTC_SUCCESS (0); `log` (the compile log) is appended. */
export function check(status: number, call: string, log = ''): void {
  if (status === 0) return;
  const text = cached && 'api' in cached ? cached.api.nvrtcGetErrorString(status) : `nvrtcResult ${status}`;
  throw new GpuCallError(call, status, text, log.trim());
}
