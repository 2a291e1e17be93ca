// CPU tests (no GPU, no nvcc) of compiling only the planned W4 GEMM variant: for every kind, group
// and tile the planner can produce, plan.defines must switch on exactly that kind and group's entries
// of plan.source, the planned entry among them, by the `#if !defined(W4_SELECT) ||
// defined(W4_SELECT_<NAME>)` guards of the .cu file (read from the source text); without defines every
// entry is built; the defines reach NVRTC's options (the compile cache hashes those); and W4GemmLaunch
// compiles with them.
import type { QuantMode } from '../../src/core/modes.ts';
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { IntscaleError } from '../../src/core/errors.ts';
import { nvrtcOptions } from '../../src/gpu/compile.ts';
import type { Gpu } from '../../src/gpu/runtime.ts';
import { W4GemmLaunch } from '../../src/gpu/kernels/w4-gemm-launch.ts';
import {
  W4_GEMM_SOURCE, W4_GEMM_WGMMA_SOURCE, W4_GEMV_SOURCE, planW4Gemm, type W4GemmPlan, type W4Tile,
} from '../../src/gpu/kernels/w4-gemm-plan.ts';

interface GuardedEntry {
  name: string;
  /** The W4_SELECT_<NAME> macro of the innermost #if around the entry, or undefined if it has none. */
  guard: string | undefined;
}

const SELECT_GUARD = /^#if !defined\(W4_SELECT\) \|\| defined\((W4_SELECT_\w+)\)$/;

/** Entry points of a W4 GEMM .cu file (W4_ENTRY, W4W_ENTRY, GV_ENTRY lines) with their guards. */
function guardedEntries(file: string): GuardedEntry[] {
  const stack: (string | undefined)[] = [];
  const entries: GuardedEntry[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^#\s*if/.test(line)) stack.push(SELECT_GUARD.exec(line)?.[1]);
    else if (/^#\s*endif/.test(line)) stack.pop();
    const guard = stack[stack.length - 1];
    let m: RegExpExecArray | null;
    if ((m = /^W4_ENTRY\((\w+), \w+, \d+, (\w+),/.exec(line))) entries.push({ name: `${m[1]}_${m[2]}`, guard });
    else if ((m = /^W4W_ENTRY\((\w+),/.exec(line))) entries.push({ name: m[1]!, guard });
    else if ((m = /^GV_ENTRY(?:_A16)?\((\w+)[,)]/.exec(line))) entries.push({ name: `${m[1]}_v8`, guard }, { name: `${m[1]}_v16`, guard });
  }
  return entries;
}

/** The entries a compile with `defines` builds (the guards' logic). */
function built(entries: GuardedEntry[], defines: Readonly<Record<string, number>>): string[] {
  return entries.filter((e) => !('W4_SELECT' in defines) || (e.guard !== undefined && e.guard in defines)).map((e) => e.name);
}

/** The entry name without its tile suffix: one kind and group. */
const base = (entry: string) => entry.replace(/_(s|m|l|r|w64|w|v8|v16)$/, '');

const SOURCES = [W4_GEMM_SOURCE, W4_GEMM_WGMMA_SOURCE, W4_GEMV_SOURCE];
const KINDS: [QuantMode, number][] = [['w4a8-is', 128], ['w4a8-is', 64], ['w4a8-is', 32], ['w4a8-fs', 128], ['w4a8-fs', 64], ['w4a8-fs', 32], ['w4a8-pc', -1], ['w4a16', 128]];
const TILES: W4Tile[] = ['s', 'm', 'l', 'r', 'w', 'w64', 'v8', 'v16'];

/** Every plan the planner accepts over kinds, groups and forced tiles (sm_90a, so tile w is possible). */
function everyPlan(): W4GemmPlan[] {
  const plans: W4GemmPlan[] = [];
  for (const [kind, group] of KINDS) {
    for (const tile of TILES) {
      const m = tile === 'v8' ? 8 : tile === 'v16' ? 16 : tile === 'w64' ? 64 : 256;
      try {
        plans.push(planW4Gemm(kind, group, m, 4096, 4096, { tile, arch: 'sm_90a' }));
      } catch (e) {
        if (!(e instanceof IntscaleError)) throw e;  // a tile this kind has not
      }
    }
  }
  return plans;
}

test('every W4 GEMM entry point sits under a W4_SELECT guard, and without defines every entry is built', () => {
  for (const file of SOURCES) {
    const entries = guardedEntries(file);
    assert.ok(entries.length >= 3, `${file}: entries not found`);
    for (const e of entries) assert.ok(e.guard, `${file}: ${e.name} has no W4_SELECT guard`);
    assert.deepEqual(built(entries, {}), entries.map((e) => e.name));
  }
});

test('plan.defines build exactly the planned kind and group of plan.source, the planned entry included', () => {
  const plans = everyPlan();
  // s, m for every grouped kind, l for g128/PC/W4A16, r for IS/FS g128, w and w64 for IS/FS/W4A16 g128 and PC,
  // v8/v16 for every kind
  assert.equal(plans.length, 8 * 2 + 4 + 2 + 4 + 4 + 8 * 2);
  const entriesOf = new Map(SOURCES.map((f) => [f, guardedEntries(f)]));
  for (const p of plans) {
    const entries = entriesOf.get(p.source)!;
    const on = built(entries, p.defines);
    assert.ok(on.includes(p.entry), `${p.entry}: not built by ${JSON.stringify(p.defines)} in ${p.source}`);
    assert.deepEqual(on, entries.map((e) => e.name).filter((n) => base(n) === base(p.entry)), `${p.entry}: other kinds built too`);
  }
});

test('plan.defines reach the NVRTC options, which the compile cache hashes', () => {
  const p = planW4Gemm('w4a8-is', 128, 1, 4096, 4096);
  const options = nvrtcOptions('sm_90a', { defines: p.defines });
  assert.ok(options.includes('-DW4_SELECT=1') && options.includes('-DW4_SELECT_IS_G128=1'), options.join(' '));
  assert.notDeepEqual(options, nvrtcOptions('sm_90a', { defines: planW4Gemm('w4a8-fs', 128, 1, 4096, 4096).defines }));
});

test('W4GemmLaunch compiles its plan.source with plan.defines and takes the planned entry', () => {
  const calls: { file: string; defines: unknown; entry?: string }[] = [];
  const fakeGpu = {
    smCount: 132, arch: 'sm_90a',
    compile(file: string, opts: { defines?: unknown }) {
      const call: { file: string; defines: unknown; entry?: string } = { file, defines: opts.defines };
      calls.push(call);
      return { fn: (entry: string) => { call.entry = entry; return {}; } };
    },
    alloc: () => ({ free() {} }),
    memset() {},
  } as unknown as Gpu;
  const launch = new W4GemmLaunch(fakeGpu, 'w4a8-fs', 64, 3, 4096, 4096);
  assert.deepEqual(calls, [{ file: launch.plan.source, defines: launch.plan.defines, entry: launch.plan.entry }]);
  assert.deepEqual(launch.plan.defines, { W4_SELECT: 1, W4_SELECT_FS_G64: 1 });
});
