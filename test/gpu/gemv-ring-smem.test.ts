// CPU test (nvcc, no GPU) that the planner's dynamic shared memory for the persistent gemv ring
// (w4-gemm-plan.ts: gemvRingSmemBytes, behind planW4Gemm(...).smem) equals the kernel's own
// compile-time size (w4_gemv.cu: GvRing<MODE, G, NT, WARPS, STAGES>::SMEM) for every kind, group
// and tile that runs the ring. A mismatch would otherwise show only on a GPU, as the kernel's
// trap (too little) or as lost occupancy (too much). The probe program is host code: nvcc builds it
// with W4_SELECT and no kind selected, so no kernel is compiled, and it runs without a GPU.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuantMode } from '../../src/core/modes.ts';
import { GEMV_RING, W4_GEMV_SOURCE, planW4Gemm } from '../../src/gpu/kernels/w4-gemm-plan.ts';

function hasNvcc(): boolean {
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = hasNvcc() ? false : 'skipped: no nvcc';

// the ring's kernels: v16 of every kind and group, W4A16's v8 (M = 16 and 1 choose the tile)
const CASES: { mode: QuantMode; group: number; m: number; cMode: string; nt: number; stages: string }[] = [
  ...[128, 64, 32].flatMap((group) => [
    { mode: 'w4a8-is' as QuantMode, group, m: 16, cMode: 'MODE_IS', nt: 2, stages: 'GV_PSTAGES_V16' },
    { mode: 'w4a8-fs' as QuantMode, group, m: 16, cMode: 'MODE_FS', nt: 2, stages: 'GV_PSTAGES_V16' },
  ]),
  { mode: 'w4a8-pc', group: 128, m: 16, cMode: 'MODE_PC', nt: 2, stages: 'GV_PSTAGES_V16' },
  { mode: 'w4a16', group: 128, m: 16, cMode: 'MODE_A16', nt: 2, stages: 'GV_PSTAGES_V16' },
  { mode: 'w4a16', group: 128, m: 1, cMode: 'MODE_A16', nt: 1, stages: 'GV_PSTAGES_V8' },
];

test('gemv ring: the planner\'s dynamic smem equals GvRing::SMEM of w4_gemv.cu for every ring kernel; the warps agree', { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'intscale-gemv-smem-'));
  try {
    const source = fileURLToPath(new URL(`../../${W4_GEMV_SOURCE}`, import.meta.url));
    const prints = CASES.map((c) => `  printf("%d\\n", GvRing<${c.cMode}, ${c.group}, ${c.nt}, GV_PWARPS, ${c.stages}>::SMEM);`);
    const program = join(dir, 'smem.cu');
    writeFileSync(program, [
      '#define W4_SELECT 1  // no kind selected: no kernel is built',
      `#include "${source}"`,
      '#include <cstdio>',
      'int main() {',
      '  printf("%d\\n", GV_PWARPS);',
      ...prints,
      '  return 0;',
      '}',
      '',
    ].join('\n'));
    const exe = join(dir, 'smem');
    execFileSync('nvcc', ['-std=c++17', '-o', exe, program], { stdio: ['ignore', 'ignore', 'pipe'] });
    const [warps, ...sizes] = execFileSync(exe, { encoding: 'utf8' }).trim().split('\n').map(Number);
    assert.equal(warps, GEMV_RING.warps, 'GV_PWARPS = GEMV_RING.warps');
    CASES.forEach((c, i) => {
      const plan = planW4Gemm(c.mode, c.group, c.m, 4096, 4096);
      assert.ok(plan.tile === 'v8' || plan.tile === 'v16', `${c.mode} g${c.group} M=${c.m}: a v tile`);
      assert.equal(plan.block[0], 32 * GEMV_RING.warps, `${c.mode} g${c.group} ${plan.tile}: the ring's block`);
      assert.equal(plan.smem, sizes[i], `${c.mode} g${c.group} ${plan.tile}: planner smem = GvRing::SMEM`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
