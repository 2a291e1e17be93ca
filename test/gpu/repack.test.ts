// CPU tests of src/gpu/repack.ts and src/gpu/kernels/w4-gemm-plan.ts (no GPU needed): the packed
// weights, decoded the way the kernels' MMA fragments read them (PTX ISA fragment layouts of
// mma.m16n8k32.s8 and mma.m16n8k16.f16, and the kernels' nibble unpacking), must give the same dot
// products as the canonical int4 weights; the planner must agree with the .cu tile constants.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Rng } from '../../src/core/rng.ts';
import { IntscaleError } from '../../src/core/errors.ts';
import { f16ToF32 } from '../../src/core/dtype.ts';
import { packFloatScales, packHalfScales, packIntScales, packedChunkIndex, repackWeights } from '../../src/gpu/repack.ts';
import {
  W4_GEMM_SOURCE, W4_GEMM_WGMMA_SOURCE, W4_GEMV_SOURCE, W4_TILES, GEMV_RING, W4_WGMMA_MIN_M, planW4Gemm, w4EntryName, w4SmemBytes, type W4Tile,
} from '../../src/gpu/kernels/w4-gemm-plan.ts';

function randomCanonical(rng: Rng, n: number, k: number): { packed: Uint8Array; q: Int8Array } {
  const q = new Int8Array(n * k);
  for (let i = 0; i < q.length; i++) q[i] = rng.int(-8, 7);
  const packed = new Uint8Array((n * k) / 2);
  for (let i = 0; i < packed.length; i++) packed[i] = (q[2 * i]! & 15) | ((q[2 * i + 1]! & 15) << 4);
  return { packed, q };
}

/** The kernel's int4→int8 unpack of one word (w4_gemm.cu unpack_s4), as 8 signed bytes b0[0..3], b1[0..3]. */
function unpackS4(w: number): [number[], number[]] {
  const sext = (x: number): number[] => {
    const v = ((x & 0x0f0f0f0f) | Math.imul(x & 0x08080808, 0x1e)) >>> 0;
    return [0, 1, 2, 3].map((i) => ((v >>> (8 * i)) << 24) >> 24);
  };
  return [sext(w), sext(w >>> 4)];
}

/** Dot products Y[m][n] = Σ_k A[m][k]·B[k][n], with B read through the W4A8 fragment layout. */
function dotViaW4A8Fragments(packed: Uint8Array, n: number, k: number, a: Int8Array, m: number): Float64Array {
  const y = new Float64Array(m * n);
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const kTiles = k / 128;
  for (let n8 = 0; n8 < n / 8; n8++)
    for (let kt = 0; kt < kTiles; kt++)
      for (let lane = 0; lane < 32; lane++)
        for (let j = 0; j < 4; j++) {
          const w = view.getUint32(packedChunkIndex(n8, kt, lane, n, k) * 16 + j * 4, true);
          const [b0, b1] = unpackS4(w);
          // PTX m16n8k32 .s8 B fragment: b0 byte i = B[k = 4·(lane%4) + i][n = lane/4], b1: k + 16
          const col = n8 * 8 + (lane >> 2);
          const kBase = kt * 128 + j * 32 + 4 * (lane & 3);
          for (let i = 0; i < 4; i++)
            for (let r = 0; r < m; r++) {
              y[r * n + col] += a[r * k + kBase + i]! * b0[i]! + a[r * k + kBase + 16 + i]! * b1[i]!;
            }
        }
  return y;
}

/** Same with the W4A16 layout: half2 h = (0x6400 | nibbles) − 1032 (w4_gemm.cu), m16n8k16 fragments. */
function dotViaW4A16Fragments(packed: Uint8Array, n: number, k: number, a: Int8Array, m: number): Float64Array {
  const y = new Float64Array(m * n);
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const kTiles = k / 128;
  for (let n8 = 0; n8 < n / 8; n8++)
    for (let kt = 0; kt < kTiles; kt++)
      for (let lane = 0; lane < 32; lane++)
        for (let j = 0; j < 4; j++) {
          const w = view.getUint32(packedChunkIndex(n8, kt, lane, n, k) * 16 + j * 4, true);
          const col = n8 * 8 + (lane >> 2);
          for (let h = 0; h < 4; h++) {
            const bits = (((w >>> (4 * h)) & 0x000f000f) | 0x64006400) >>> 0;
            const lo = f16ToF32(bits & 0xffff) - 1032;
            const hi = f16ToF32(bits >>> 16) - 1032;
            // half2 h feeds k16-step h>>1 as b0 (h even) or b1 (h odd): k = 8h + 2·(lane%4) + {0,1}
            const kk = kt * 128 + j * 32 + 8 * h + 2 * (lane & 3);
            for (let r = 0; r < m; r++) y[r * n + col] += a[r * k + kk]! * lo + a[r * k + kk + 1]! * hi;
          }
        }
  return y;
}

function dotCanonical(q: Int8Array, n: number, k: number, a: Int8Array, m: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += a[r * k + i]! * q[c * k + i]!;
      y[r * n + c] = s;
    }
  return y;
}

for (const [n, k] of [
  [8, 128],
  [24, 256],
  [64, 384],
  [136, 256],
] as const) {
  test(`repackWeights w4a8 and w4a16 read through MMA fragments equal canonical dot products (N=${n}, K=${k})`, () => {
    const rng = new Rng(1000 + n + k);
    const { packed, q } = randomCanonical(rng, n, k);
    const m = 3;
    const a = new Int8Array(m * k);
    for (let i = 0; i < a.length; i++) a[i] = rng.int(-127, 127);
    const want = dotCanonical(q, n, k, a, m);
    assert.deepEqual(dotViaW4A8Fragments(repackWeights(packed, n, k, 'w4a8'), n, k, a, m), want);
    assert.deepEqual(dotViaW4A16Fragments(repackWeights(packed, n, k, 'w4a16'), n, k, a, m), want);
  });
}

test('packedChunkIndex is a bijection onto the N*K/32 chunks (N % 128 != 0 too)', () => {
  for (const [n, k] of [[64, 256], [200, 384], [256, 128]] as const) {
    const seen = new Uint8Array((n * k) / 32);
    for (let n8 = 0; n8 < n / 8; n8++)
      for (let kt = 0; kt < k / 128; kt++)
        for (let lane = 0; lane < 32; lane++) seen[packedChunkIndex(n8, kt, lane, n, k)]! += 1;
    assert.ok(seen.every((c) => c === 1), `N=${n} K=${k}`);
  }
});

test('repackWeights rejects shapes the kernels cannot take', () => {
  assert.throws(() => repackWeights(new Uint8Array(64 * 64), 12, 128 * 4, 'w4a8'), IntscaleError);
  assert.throws(() => repackWeights(new Uint8Array(8 * 50), 8, 100, 'w4a8'), /multiple of 128/);
  assert.throws(() => repackWeights(new Uint8Array(10), 8, 128, 'w4a16'), /expected N\*K\/2/);
});

test('scale packing transposes [N, K/G] to [K/G, N] (int32, fp32, fp16 bits)', () => {
  const n = 16, groups = 3;
  const rng = new Rng(7);
  const is = new Int32Array(n * groups).map(() => rng.int(-5000, 5000));
  const s = new Float32Array(n * groups).map(() => f16ToF32(rng.int(0x1000, 0x3000)));
  const isT = packIntScales(is, n, groups), sT = packFloatScales(s, n, groups), hT = packHalfScales(s, n, groups);
  for (let c = 0; c < n; c++)
    for (let g = 0; g < groups; g++) {
      assert.equal(isT[g * n + c], is[c * groups + g]);
      assert.equal(sT[g * n + c], s[c * groups + g]);
      assert.equal(f16ToF32(hT[g * n + c]!), s[c * groups + g]);
    }
  assert.throws(() => packIntScales(is, n, 4), /expected N\*K\/G/);
});

test('planner tiles match the TILE_*/THREADS_* constants and entry points of w4_gemm.cu', () => {
  const src = readFileSync(new URL('../../src/gpu/kernels/w4_gemm.cu', import.meta.url), 'utf8');
  for (const tile of ['s', 'm', 'l'] as W4Tile[]) {
    const m = new RegExp(`#define TILE_${tile} (\\d+), (\\d+), (\\d+), (\\d+), (\\d+)`).exec(src);
    const th = new RegExp(`#define THREADS_${tile} (\\d+)`).exec(src);
    assert.ok(m && th, `TILE_${tile} not found`);
    const [wm, wn, mt, nt, stages] = m.slice(1).map(Number) as [number, number, number, number, number];
    assert.deepEqual(W4_TILES[tile], { bm: wm * mt * 16, bn: wn * nt * 8, threads: wm * wn * 32, stages });
    assert.equal(Number(th[1]), wm * wn * 32);
  }
  for (const [kind, group] of [['w4a8-is', 128], ['w4a8-is', 64], ['w4a8-is', 32], ['w4a8-fs', 128], ['w4a8-fs', 64], ['w4a8-fs', 32], ['w4a8-pc', -1], ['w4a16', 128]] as const) {
    const tiles: W4Tile[] = group === 128 || kind === 'w4a8-pc' ? ['s', 'm', 'l'] : ['s', 'm'];
    for (const tile of tiles) {
      const base = w4EntryName(kind, group, tile).replace(/_[sml]$/, '');
      assert.ok(new RegExp(`W4_ENTRY\\(${base}, \\w+, \\d+, ${tile},`).test(src), `${base}_${tile} missing in w4_gemm.cu`);
    }
  }
  // the W4_SELECT defines: test/gpu/w4-select-defines.test.ts
  // IS g128 small tile: 6 stages x (16x128 A + 128x64 W) + 7 scale slots x 128x4
  assert.equal(w4SmemBytes('w4a8-is', 128, 's'), 6 * (16 * 128 + 128 * 64) + 7 * 128 * 4);
  assert.equal(planW4Gemm('w4a8-is', 64, 4096, 4096, 4096).entry, 'w4a8_gemm_is_g64_m');
});

test('planW4Gemm: tile by M, split-K fills the GPU at small M, limits are one-line errors', () => {
  const p1 = planW4Gemm('w4a8-is', 128, 1, 4096, 4096, { tile: 's' });
  assert.equal(p1.tile, 's');
  assert.ok(p1.grid[0] * p1.grid[1] * p1.splits >= 132, 'small M should use split-K to fill 132 SMs');
  assert.ok(p1.splits <= 4096 / 128);
  assert.equal(p1.workspaceBytes, p1.splits > 1 ? p1.splits * 1 * 4096 * 4 : 0);
  assert.equal(p1.counters, p1.splits > 1 ? p1.grid[0] * p1.grid[1] : 0);
  const pl = planW4Gemm('w4a8-fs', 128, 4096, 4096, 4096);
  assert.equal(pl.tile, 'l');
  assert.deepEqual(pl.grid, [32, 32, 1]);
  assert.equal(pl.workspaceBytes, 0);
  assert.throws(() => planW4Gemm('w4a8-is', 128, 1, 4100, 4096), /multiple of 8/);
  assert.throws(() => planW4Gemm('w4a8-is', 128, 1, 4096, 4000), /multiple of 128/);
  assert.throws(() => planW4Gemm('w4a16', 64, 1, 4096, 4096), /unsupported/);
  assert.throws(() => planW4Gemm('w4a8-is', 128, 1, 4096, 4096, { tile: 's', splits: 33 }), /splits/);
});

test('planW4Gemm: the small-M tiles v8 (M <= 8) and v16 (M <= 16) for W4A8 with N % 16 == 0, any arch, no split-K', () => {
  const p = planW4Gemm('w4a8-is', 128, 1, 4096, 11008);
  assert.equal(p.tile, 'v8');
  assert.equal(p.entry, 'w4a8_gemm_is_g128_v8');
  assert.equal(p.source, W4_GEMV_SOURCE);
  assert.deepEqual(p.grid, [256, 1, 1]);  // W4A8's v8: the rounds, one block per 16 weight rows
  assert.deepEqual(p.block, [256, 1, 1]);
  assert.equal(p.smem, 0);
  assert.equal(p.workspaceBytes, 0);
  // v16 and W4A16's v8: the persistent ring, as many blocks as fit (here by shared memory: 4 per
  // 228 KiB SM by default, the occupancy calculator's count when given), 4 warps, dynamic smem
  const ring = planW4Gemm('w4a8-is', 128, 16, 22016, 4096);
  assert.deepEqual([ring.grid, ring.block], [[528, 1, 1], [128, 1, 1]]);
  assert.equal(ring.smem, 4 * 3 * (2 * 1024 + 1024 + 128) + 2 * 4 * 2 * 4 * 32 * 4);  // 4 warps × 3 stages, 2 reduction buffers
  assert.deepEqual(planW4Gemm('w4a8-is', 128, 16, 22016, 4096, { gemvBlocksPerSm: 3, smCount: 100 }).grid, [300, 1, 1]);
  assert.deepEqual(planW4Gemm('w4a8-is', 128, 16, 4096, 4096).grid, [256, 1, 1]);  // never more blocks than row tiles
  const a16 = planW4Gemm('w4a16', 128, 1, 22016, 4096);
  assert.deepEqual([a16.grid, a16.block, a16.smem], [[528, 1, 1], [128, 1, 1], 4 * 4 * (2 * 1024 + 1024 + 128) + 2 * 4 * 4 * 32 * 4]);
  assert.equal(planW4Gemm('w4a8-fs', 32, 16, 4096, 4096, { arch: 'sm_90a' }).entry, 'w4a8_gemm_fs_g32_v16');
  assert.equal(planW4Gemm('w4a8-pc', 128, 9, 4096, 4096).entry, 'w4a8_gemm_pc_v16');
  assert.equal(planW4Gemm('w4a8-is', 128, 17, 4096, 4096).tile, 'm');   // M > 16
  assert.equal(planW4Gemm('w4a8-is', 128, 4, 4104, 4096).tile, 's');    // N % 16 != 0
  assert.equal(planW4Gemm('w4a16', 128, 4, 4096, 4096).entry, 'w4a16_gemm_g128_v8'); // fp16 activations too
  assert.equal(planW4Gemm('w4a16', 128, 16, 4096, 4096).entry, 'w4a16_gemm_g128_v16');
  assert.throws(() => planW4Gemm('w4a8-is', 128, 9, 4096, 4096, { tile: 'v8' }), /tile v8 needs/);
  assert.throws(() => planW4Gemm('w4a8-is', 128, 1, 4096, 4096, { tile: 'v8', splits: 2 }), /no split-K/);
});

test('w4_gemv.cu: block constants agree with the planner; entries for every kind and group', () => {
  const src = readFileSync(new URL('../../src/gpu/kernels/w4_gemv.cu', import.meta.url), 'utf8');
  const def = (name: string) => Number(new RegExp(`#define ${name} (\\d+)`).exec(src)?.[1]);
  assert.equal(W4_TILES.v8.bn, def('GV_ROWS'));
  assert.equal(W4_TILES.v8.threads, def('GV_THREADS'));  // the rounds
  assert.equal(GEMV_RING.warps, def('GV_PWARPS'));         // the ring
  assert.equal(GEMV_RING.stages.v8, def('GV_PSTAGES_V8'));
  assert.equal(GEMV_RING.stages.v16, def('GV_PSTAGES_V16'));
  for (const [kind, group] of [['w4a8-is', 128], ['w4a8-is', 64], ['w4a8-is', 32], ['w4a8-fs', 128], ['w4a8-fs', 64], ['w4a8-fs', 32], ['w4a8-pc', 128]] as const) {
    const base = w4EntryName(kind, group, 'v8').replace(/_v8$/, '');
    assert.ok(new RegExp(`GV_ENTRY\\(${base}, MODE_\\w+, ${group}\\)`).test(src), `${base} missing in w4_gemv.cu`);
  }
});

test('planW4Gemm: the wgmma tile w on sm_90a only, for IS/FS/W4A16 g128 and PC with N % 128 == 0, M >= W4_WGMMA_MIN_M', () => {
  const p = planW4Gemm('w4a8-is', 128, 4096, 22016, 4096, { arch: 'sm_90a' });
  assert.equal(p.tile, 'w');
  assert.equal(p.entry, 'w4a8_gemm_is_g128_w');
  assert.equal(p.source, W4_GEMM_WGMMA_SOURCE);
  assert.deepEqual(p.grid, [132, 1, 1]);  // persistent: one block per SM
  assert.deepEqual(planW4Gemm('w4a8-pc', 128, 256, 512, 4096, { arch: 'sm_90a', tile: 'w', splits: 1 }).grid, [8, 1, 1]);  // no more blocks than tiles
  assert.deepEqual(p.block, [384, 1, 1]);
  assert.equal(p.smem, 1024 + 7 * 25600 + 8 * 64 * 20 * 4);
  assert.equal(planW4Gemm('w4a8-pc', 128, 300, 4096, 4096, { arch: 'sm_90a' }).entry, 'w4a8_gemm_pc_w');
  assert.equal(planW4Gemm('w4a8-fs', 128, 300, 4096, 4096, { arch: 'sm_90a' }).entry, 'w4a8_gemm_fs_g128_w');
  assert.equal(planW4Gemm('w4a8-is', 128, 4096, 4096, 4096, { arch: 'sm_80' }).source, W4_GEMM_SOURCE);  // not Hopper
  assert.notEqual(planW4Gemm('w4a8-is', 64, 4096, 4096, 4096, { arch: 'sm_90a' }).tile, 'w');  // g64
  assert.notEqual(planW4Gemm('w4a8-is', 128, 4096, 4104, 4096, { arch: 'sm_90a' }).tile, 'w');  // N % 128
  // W4A16 g128 too (fp16 activations: a 128-token stage is 41 KB, so 4 stages; 64-token 25 KB, 7)
  const a16 = planW4Gemm('w4a16', 128, 4096, 4096, 4096, { arch: 'sm_90a' });
  assert.deepEqual([a16.tile, a16.entry, a16.smem], ['w', 'w4a16_gemm_g128_w', 1024 + 4 * 41984 + 8 * 64 * 20 * 4]);
  assert.deepEqual([planW4Gemm('w4a16', 128, 64, 4096, 4096, { arch: 'sm_90a' }).entry, planW4Gemm('w4a16', 128, 64, 4096, 4096, { arch: 'sm_90a' }).smem],
    ['w4a16_gemm_g128_w64', 1024 + 7 * 25600 + 8 * 64 * 20 * 4]);
  assert.ok(planW4Gemm('w4a16', 128, 4096, 4096, 4096, { arch: 'sm_90a' }).smem <= 232448);  // the H100/H200 opt-in limit
  assert.notEqual(planW4Gemm('w4a16', 128, 4096, 4096, 4096, { arch: 'sm_80' }).tile, 'w');
  // small grids take split-K (wgmmaSplits): the down-proj's 32 tiles at M = 64 as 4 splits of
  // 21-22 k-tiles, 64 tiles at M = 256 as 2
  const down = planW4Gemm('w4a8-is', 128, 64, 4096, 11008, { arch: 'sm_90a' });
  assert.deepEqual([down.tile, down.entry, down.splits, down.grid, down.counters], ['w64', 'w4a8_gemm_is_g128_w64', 4, [32, 4, 1], 32]);
  // the 64-token tile w64 up to M = 64, and above where its tiles fit one round on the SMs or w's
  // last token tile would be at most half full in several rounds: its own smem, its own tile count
  assert.equal(planW4Gemm('w4a8-is', 128, 65, 4096, 11008, { arch: 'sm_90a' }).tile, 'w64');     // 32 x 2 tiles
  assert.equal(planW4Gemm('w4a8-is', 128, 128, 12288, 4096, { arch: 'sm_90a' }).tile, 'w');      // 96 x 2 > 132
  assert.equal(planW4Gemm('w4a8-is', 128, 192, 12288, 4096, { arch: 'sm_90a' }).tile, 'w64');    // 192 = 128 + 64, w in 2 rounds
  assert.equal(planW4Gemm('w4a8-is', 128, 192, 6144, 4096, { arch: 'sm_90a' }).tile, 'w');       // w's 96 tiles: one round
  assert.equal(planW4Gemm('w4a8-is', 128, 320, 22016, 4096, { arch: 'sm_90a' }).tile, 'w');      // M > 256: w
  assert.equal(planW4Gemm('w4a8-is', 128, 1024, 4096, 4096, { arch: 'sm_90a' }).tile, 'w');
  assert.equal(planW4Gemm('w4a8-pc', 128, W4_WGMMA_MIN_M, 4096, 4096, { arch: 'sm_90a' }).entry, 'w4a8_gemm_pc_w64');
  assert.equal(planW4Gemm('w4a8-is', 128, 64, 4096, 4096, { arch: 'sm_90a' }).smem, 1024 + 7 * 17408 + 8 * 64 * 20 * 4);
  assert.deepEqual(planW4Gemm('w4a8-is', 128, 100, 512, 4096, { arch: 'sm_90a', tile: 'w64', splits: 1 }).grid, [8, 1, 1]);  // 4 x 2 tiles
  assert.equal(planW4Gemm('w4a8-pc', 128, 256, 4096, 14336, { arch: 'sm_90a', tile: 'w' }).splits, 2);
  assert.equal(planW4Gemm('w4a8-pc', 128, 256, 4096, 14336, { arch: 'sm_90a' }).splits, 1);  // w64: 128 tiles
  assert.equal(planW4Gemm('w4a8-is', 128, 64, 4096, 4096, { arch: 'sm_90a' }).splits, 4);   // K = 4096: 32 tiles, 8 k-tiles each
  assert.equal(planW4Gemm('w4a8-is', 128, 128, 4096, 4096, { arch: 'sm_90a' }).splits, 2);  // w64: 64 tiles
  assert.equal(planW4Gemm('w4a8-is', 128, 128, 4096, 4096, { arch: 'sm_90a', tile: 'w' }).splits, 4);
  assert.equal(planW4Gemm('w4a8-is', 128, 256, 4096, 4096, { arch: 'sm_90a', tile: 'w' }).splits, 2);  // 64 tiles
  assert.equal(planW4Gemm('w4a16', 128, 128, 6144, 4096, { arch: 'sm_90a', tile: 'w' }).splits, 2);    // 48 tiles: 3 splits need 2 rounds
  assert.equal(planW4Gemm('w4a8-is', 128, 64, 4096, 768, { arch: 'sm_90a' }).splits, 1);    // 6 k-tiles: too short to split
  assert.equal(planW4Gemm('w4a8-is', 128, 64, 12288, 4096, { arch: 'sm_90a' }).splits, 1);  // 96 tiles: 2 splits need 2 rounds
  assert.equal(planW4Gemm('w4a8-is', 128, 4096, 4096, 11008, { arch: 'sm_90a' }).splits, 1);  // many tiles: no split
  // FS splits like IS (its reduction is branch-free too)
  assert.deepEqual([planW4Gemm('w4a8-fs', 128, 64, 4096, 11008, { arch: 'sm_90a' }).tile, planW4Gemm('w4a8-fs', 128, 64, 4096, 11008, { arch: 'sm_90a' }).splits], ['w64', 4]);
  assert.equal(planW4Gemm('w4a8-fs', 128, 64, 4096, 4096, { arch: 'sm_90a' }).tile, 'w64');
  assert.equal(planW4Gemm('w4a8-is', 128, 256, 4096, 11008, { arch: 'sm_90a' }).tile, 'w64');
  assert.equal(planW4Gemm('w4a8-is', 128, W4_WGMMA_MIN_M, 4096, 4096, { arch: 'sm_90a' }).tile, 'w64');
  assert.notEqual(planW4Gemm('w4a8-is', 128, W4_WGMMA_MIN_M - 1, 4096, 4096, { arch: 'sm_90a' }).tile, 'w');
  assert.throws(() => planW4Gemm('w4a8-is', 128, 4096, 4096, 4096, { tile: 'w', arch: 'sm_80' }), /tile w needs sm_90a/);
  const forced = planW4Gemm('w4a8-is', 128, 4096, 4096, 4096, { tile: 'w', arch: 'sm_90a', splits: 2 });  // w's split-K, on request
  assert.deepEqual([forced.grid, forced.splits, forced.workspaceBytes, forced.counters], [[66, 2, 1], 2, 2 * 4096 * 4096 * 4, 1024]);
  const w64Split = planW4Gemm('w4a8-is', 128, 33, 1024, 4096, { arch: 'sm_90a', splits: 4 });
  assert.equal(w64Split.tile, 'w64');
  assert.equal(w64Split.workspaceBytes, 4 * 64 * 1024 * 4, 'tile w keeps whole 64-token tiles of partials');
  assert.equal(planW4Gemm('w4a8-is', 128, 4, 1024, 4096, { splits: 4 }).tile, 's');  // v8 has no split-K
});

test('w4_gemm_wgmma.cu: tile and smem constants agree with the planner; one entry per kind', () => {
  const src = readFileSync(new URL('../../src/gpu/kernels/w4_gemm_wgmma.cu', import.meta.url), 'utf8');
  const def = (name: string) => Number(new RegExp(`#define ${name} (\\d+)`).exec(src)?.[1]);
  assert.deepEqual(W4_TILES.w, { bm: def('W4W_BT'), bn: def('W4W_BN'), threads: def('W4W_THREADS'), stages: def('W4W_STAGES') });
  for (const kind of ['w4a8-is', 'w4a8-fs', 'w4a8-pc'] as const) {
    assert.ok(src.includes(`W4W_ENTRY(${w4EntryName(kind, 128, 'w')},`), `${kind} entry missing`);
    assert.ok(src.includes(`W4W_ENTRY(${w4EntryName(kind, 128, 'w64')}, `) && src.includes(`${w4EntryName(kind, 128, 'w64')}, MODE_${kind.slice(5).toUpperCase()}, ${W4_TILES.w64.bm})`), `${kind} w64 entry missing`);
  }
});
