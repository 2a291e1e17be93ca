// NVRTC compilation of a CUDA C++ source to a cubin, with an on-disk cache keyed by the sha256 of
// (source, options, arch, NVRTC version). Needs no GPU: only libnvrtc (or a cache hit).
// Cache folder: $INTSCALE_CACHE/cubin, else ~/.cache/intscale/cubin. Writes go to a temp name
// then rename, so a crash never leaves a truncated cubin.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../core/errors.ts';
import { readKernelSource } from './kernel-source.ts';
import type { Handle, Out } from './ffi/cuda.ts';
import { check, nvrtc, nvrtcVersionString, tryNvrtc } from './ffi/nvrtc.ts';

export interface CompileOptions {
  /** Preprocessor defines: `{ GROUP: 128, USE_X: true }` → `-DGROUP=128 -DUSE_X=1`. */
  defines?: Record<string, string | number | boolean>;
  /** Target, e.g. 'sm_90a' or 'sm_80'. Default: the GPU's (Gpu.compile) or 'sm_90a' (compileCubin). */
  arch?: string;
  /** Extra NVRTC options appended after the defaults. */
  extraOptions?: string[];
  /** Skip the on-disk cache (always compile). */
  noCache?: boolean;
}

export interface CompiledCubin {
  cubin: Buffer;
  /** The NVRTC options used (for error messages and reports). */
  options: string[];
  /** True when the cubin came from the on-disk cache. */
  cached: boolean;
  /** NVRTC's log (warnings), empty on a cache hit. */
  log: string;
}

/** The NVRTC options for an arch and defines: the defaults every kernel is compiled with. */
export function nvrtcOptions(arch: string, opts: CompileOptions = {}): string[] {
  const options = [`--gpu-architecture=${arch}`, '-default-device', '-std=c++17', '-lineinfo'];
  for (const [name, value] of Object.entries(opts.defines ?? {})) {
    options.push(`-D${name}=${typeof value === 'boolean' ? (value ? 1 : 0) : value}`);
  }
  return options.concat(opts.extraOptions ?? []);
}

export function cacheDir(): string {
  const base = process.env.INTSCALE_CACHE ?? path.join(os.homedir(), '.cache', 'intscale');
  return path.join(base, 'cubin');
}

/** The package root (two levels above this file): relative kernel paths also resolve from here. */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A relative path as given if it exists from the working directory, else from the package root. */
export function resolveSourcePath(sourceFile: string): string {
  if (path.isAbsolute(sourceFile) || fs.existsSync(sourceFile)) return sourceFile;
  const fromRoot = path.join(PACKAGE_ROOT, sourceFile);
  return fs.existsSync(fromRoot) ? fromRoot : sourceFile;
}

/**
 * Compile a .cu file on disk (errors name the file; relative paths may be package-relative); its
 * `#include "..."` files are inlined first (kernel-source.ts).
 */
export function compileFile(sourceFile: string, opts: CompileOptions = {}): CompiledCubin {
  return compileSource(readKernelSource(resolveSourcePath(sourceFile), sourceFile), path.basename(sourceFile), opts);
}

/** Compile CUDA C++ source text to a cubin (NVRTC), using and filling the on-disk cache. */
export function compileSource(source: string, name: string, opts: CompileOptions = {}): CompiledCubin {
  const arch = opts.arch ?? 'sm_90a';
  const options = nvrtcOptions(arch, opts);
  const loaded = tryNvrtc();
  // Without NVRTC a cached cubin still works, keyed with the version recorded at compile time.
  const version = 'api' in loaded ? nvrtcVersionString(loaded.api) : undefined;
  const key = (v: string) => crypto.createHash('sha256')
    .update(JSON.stringify({ source, options, arch, nvrtc: v })).digest('hex');
  const dir = cacheDir();
  if (!opts.noCache) {
    const hit = version ? readCache(dir, key(version)) : readAnyVersion(dir, source, options, arch);
    if (hit) return { cubin: hit, options, cached: true, log: '' };
  }
  if (!version) fail(name, `cannot compile: ${(loaded as { error: string }).error}`);
  const cubin = nvrtcCompile(source, name, options);
  if (!opts.noCache) {
    writeCache(dir, key(version), cubin.cubin);
    // Remember which NVRTC version built this (source, options, arch) for NVRTC-less reuse.
    writeCache(dir, indexKey(source, options, arch), Buffer.from(version));
  }
  return { ...cubin, options, cached: false };
}

function nvrtcCompile(source: string, name: string, options: string[]): { cubin: Buffer; log: string } {
  const api = nvrtc();
  const prog: Out<Handle> = [null];
  check(api.nvrtcCreateProgram(prog, source, name, 0, null, null), `nvrtcCreateProgram(${name})`);
  try {
    const status = api.nvrtcCompileProgram(prog[0], options.length, options);
    const log = programLog(prog[0]);
    check(status, `nvrtcCompileProgram(${name}, ${options.join(' ')})`, log);
    const size: Out<number> = [null];
    check(api.nvrtcGetCUBINSize(prog[0], size), `nvrtcGetCUBINSize(${name})`);
    if (!size[0]) fail(name, `NVRTC produced no cubin (is --gpu-architecture a real sm_XX, not compute_XX?)`);
    const cubin = Buffer.alloc(Number(size[0]));
    check(api.nvrtcGetCUBIN(prog[0], cubin), `nvrtcGetCUBIN(${name})`);
    return { cubin, log };
  } finally {
    api.nvrtcDestroyProgram([prog[0]]);
  }
}

function programLog(prog: Handle): string {
  const api = nvrtc();
  const size: Out<number> = [null];
  if (api.nvrtcGetProgramLogSize(prog, size) !== 0 || !size[0]) return '';
  const buf = Buffer.alloc(Number(size[0]));
  if (api.nvrtcGetProgramLog(prog, buf) !== 0) return '';
  return buf.toString('utf8').replace(/\0+$/, '');
}

function indexKey(source: string, options: string[], arch: string): string {
  return crypto.createHash('sha256').update(JSON.stringify({ source, options, arch, index: true })).digest('hex');
}

function readAnyVersion(dir: string, source: string, options: string[], arch: string): Buffer | undefined {
  const version = readCache(dir, indexKey(source, options, arch));
  if (!version) return undefined;
  const key = crypto.createHash('sha256')
    .update(JSON.stringify({ source, options, arch, nvrtc: version.toString() })).digest('hex');
  return readCache(dir, key);
}

function readCache(dir: string, key: string): Buffer | undefined {
  try {
    return fs.readFileSync(path.join(dir, `${key}.bin`));
  } catch {
    return undefined;
  }
}

function writeCache(dir: string, key: string, data: Buffer): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    const final = path.join(dir, `${key}.bin`);
    const tmp = `${final}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, final);
  } catch {
    // A read-only or full cache folder only costs a recompile next time.
  }
}
