// CPU test (nvcc, no GPU) that the planner's dynamic shared memory (w4-gemm-plan.ts: w4SmemBytes,
// behind planW4Gemm(...).smem) equals each kernel's own compile-time size: the persistent gemv ring
// (w4_gemv.cu: GvRing<MODE, G, NT, WARPS, STAGES>::SMEM) for every kind, group and tile that runs
// it, and the wgmma tiles w / w64 (w4_gemm_wgmma.cu: WStage<BT, A16>::SMEM) for every kind. A
// mismatch would otherwise show only on a GPU, as the kernel's trap (too little) or as lost
// occupancy (too much). The probe programs are host code: nvcc builds them with W4_SELECT and no
// kind selected, so no kernel is compiled, and they run without a GPU.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuantMode } from '../../src/core/modes.ts';
import { GEMV_RING, W4_GEMM_WGMMA_SOURCE, W4_GEMV_SOURCE, planW4Gemm } from '../../src/gpu/kernels/w4-gemm-plan.ts';

function hasNvcc(): boolean {
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = hasNvcc() ? false : 'skipped: no nvcc';

/** The integers a host program prints for C++ expressions over one kernel file's compile-time types. */
function hostValues(source: string, expressions: string[]): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'intscale-kernel-smem-'));
  try {
    const program = join(dir, 'smem.cu');
    writeFileSync(program, [
      '#define W4_SELECT 1  // no kind selected: no kernel is built',
      `#include "${fileURLToPath(new URL(`../../${source}`, import.meta.url))}"`,
      '#include <cstdio>',
      'int main() {',
      ...expressions.map((e) => `  printf("%d\\n", (int)(${e}));`),
      '  return 0;',
      '}',
      '',
    ].join('\n'));
    const exe = join(dir, 'smem');
    execFileSync('nvcc', ['-std=c++17', '-o', exe, program], { stdio: ['ignore', 'ignore', 'pipe'] });
    return execFileSync(exe, { encoding: 'utf8' }).trim().split('\n').map(Number);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// the ring's kernels: v16 of every kind and group, W4A16's v8 (M = 16 and 1 choose the tile)
const RING_CASES: { mode: QuantMode; group: number; m: number; cMode: string; nt: number; stages: string }[] = [
  ...[128, 64, 32].flatMap((group) => [
    { mode: 'w4a8-is' as QuantMode, group, m: 16, cMode: 'MODE_IS', nt: 2, stages: 'GV_PSTAGES_V16' },
    { mode: 'w4a8-fs' as QuantMode, group, m: 16, cMode: 'MODE_FS', nt: 2, stages: 'GV_PSTAGES_V16' },
  ]),
  { mode: 'w4a8-pc', group: 128, m: 16, cMode: 'MODE_PC', nt: 2, stages: 'GV_PSTAGES_V16' },
  { mode: 'w4a16', group: 128, m: 16, cMode: 'MODE_A16', nt: 2, stages: 'GV_PSTAGES_V16' },
  { mode: 'w4a16', group: 128, m: 1, cMode: 'MODE_A16', nt: 1, stages: 'GV_PSTAGES_V8' },
];

test('gemv ring: the planner\'s dynamic smem equals GvRing::SMEM of w4_gemv.cu for every ring kernel; the warps agree', { skip, timeout: 120_000 }, () => {
  const [warps, ...sizes] = hostValues(W4_GEMV_SOURCE, [
    'GV_PWARPS',
    ...RING_CASES.map((c) => `GvRing<${c.cMode}, ${c.group}, ${c.nt}, GV_PWARPS, ${c.stages}>::SMEM`),
  ]);
  assert.equal(warps, GEMV_RING.warps, 'GV_PWARPS = GEMV_RING.warps');
  RING_CASES.forEach((c, i) => {
    const plan = planW4Gemm(c.mode, c.group, c.m, 4096, 4096);
    assert.ok(plan.tile === 'v8' || plan.tile === 'v16', `${c.mode} g${c.group} M=${c.m}: a v tile`);
    assert.equal(plan.block[0], 32 * GEMV_RING.warps, `${c.mode} g${c.group} ${plan.tile}: the ring's block`);
    assert.equal(plan.smem, sizes[i], `${c.mode} g${c.group} ${plan.tile}: planner smem = GvRing::SMEM`);
  });
});

const WGMMA_CASES = (['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'] as QuantMode[]).flatMap((mode) =>
  (['w', 'w64'] as const).map((tile) => ({ mode, tile, bt: tile === 'w' ? 128 : 64, a16: mode === 'w4a16' })));

test('wgmma tiles: the planner\'s dynamic smem equals WStage<BT, A16>::SMEM of w4_gemm_wgmma.cu for w and w64 of every kind', { skip, timeout: 120_000 }, () => {
  const sizes = hostValues(W4_GEMM_WGMMA_SOURCE, WGMMA_CASES.map((c) => `WStage<${c.bt}, ${c.a16}>::SMEM`));
  WGMMA_CASES.forEach((c, i) => {
    const plan = planW4Gemm(c.mode, 128, 4096, 4096, 4096, { tile: c.tile, arch: 'sm_90a' });
    assert.equal(plan.tile, c.tile);
    assert.ok(sizes[i]! > 100 * 1024, `${c.mode} ${c.tile}: a multi-stage ring (${sizes[i]} B)`);
    assert.equal(plan.smem, sizes[i], `${c.mode} ${c.tile}: planner smem = WStage::SMEM`);
  });
});
