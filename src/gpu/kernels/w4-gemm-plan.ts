// Launch planning for src/gpu/kernels/w4_gemm.cu: which entry point, grid, block, dynamic shared
// memory and split-K factor for a GEMM shape, plus the shape limits. Pure (no GPU): the runtime's
// wrappers call planW4Gemm and launch with the documented parameter list (docs/KERNELS.md).
import { fail } from '../../core/errors.ts';
import type { QuantMode } from '../../core/modes.ts';

/**
 * The kernels' own short name of a W4 mode, as it appears in entry points (w4a8_gemm_is_g128_w)
 * and W4_SELECT defines: IS = integer group scales, FS = float group scales, PC = per channel,
 * w4a16 = fp16 activations. Callers pass the mode (src/core/modes.ts); only this file maps it.
 */
type KernelKind = 'is' | 'fs' | 'pc' | 'w4a16';
const KERNEL_KIND: Record<QuantMode, KernelKind> = { 'w4a8-is': 'is', 'w4a8-fs': 'fs', 'w4a8-pc': 'pc', 'w4a16': 'w4a16' };
/**
 * r = the l tile with the reordered g128 loop (IS/FS g128 only; ~128 registers, 2 blocks/SM).
 * w = the Hopper wgmma kernel of w4_gemm_wgmma.cu (sm_90a; IS/FS g128, PC and W4A16 g128; N % 128 == 0):
 *     bm = tokens per block, bn = weight rows per block; w64 = the same with 64-token tiles (M <= 64, and
 *     above where its tiles fit the SMs in one round).
 * v8, v16 = the small-M kernels of w4_gemv.cu (M ≤ 8 / M ≤ 16; IS/FS g32/64/128, PC and W4A16 g128; N % 16 == 0):
 *     W4A8 v8 the register rounds, one block per 16 weight rows; v16 and W4A16 v8 a persistent cp.async ring.
 */
export type W4Tile = 's' | 'm' | 'l' | 'r' | 'w' | 'w64' | 'v8' | 'v16';

export interface W4TileShape {
  readonly bm: number;
  readonly bn: number;
  readonly threads: number;
  readonly stages: number;
}

/** w4_gemv.cu's persistent ring: GV_PWARPS warps, GV_PSTAGES_V8 / GV_PSTAGES_V16 k-tiles deep per warp. */
export const GEMV_RING = { warps: 4, stages: { v8: 4, v16: 3 } } as const;

/** Must match TILE_* / THREADS_* in w4_gemm.cu. */
export const W4_TILES: Readonly<Record<W4Tile, W4TileShape>> = {
  s: { bm: 16, bn: 128, threads: 128, stages: 6 },
  m: { bm: 64, bn: 128, threads: 256, stages: 4 },
  l: { bm: 128, bn: 128, threads: 256, stages: 4 },
  r: { bm: 128, bn: 128, threads: 256, stages: 4 },
  w: { bm: 128, bn: 128, threads: 384, stages: 7 },
  w64: { bm: 64, bn: 128, threads: 384, stages: 7 },
  // w4_gemv.cu: W4A8's v8 runs the rounds (GV_THREADS); v16 and W4A16's v8 the persistent ring (GEMV_RING)
  v8: { bm: 8, bn: 16, threads: 256, stages: 0 },
  v16: { bm: 16, bn: 16, threads: 32 * GEMV_RING.warps, stages: 0 },
};

/** Shared memory of one SM on sm_90 (H100/H200: 228 KiB), of which the runtime reserves 1 KiB per block. */
const SM_SHARED_BYTES = 233472;
const BLOCK_RESERVED_SMEM = 1024;

export const W4_GEMM_SOURCE = 'src/gpu/kernels/w4_gemm.cu';
/** The sm_90a wgmma kernels (tile w); same ABI and operand layouts as W4_GEMM_SOURCE. */
export const W4_GEMM_WGMMA_SOURCE = 'src/gpu/kernels/w4_gemm_wgmma.cu';
/** The small-M kernels (tiles v8, v16); same ABI and operand layouts as W4_GEMM_SOURCE. */
export const W4_GEMV_SOURCE = 'src/gpu/kernels/w4_gemv.cu';
/** Smallest M that takes the wgmma tile by default (H100 timings, docs/KERNELS.md). */
export const W4_WGMMA_MIN_M = 17;

/** Tiles of the wgmma kernels (w4_gemm_wgmma.cu). */
export function isWgmmaTile(tile: W4Tile): tile is 'w' | 'w64' {
  return tile === 'w' || tile === 'w64';
}

/** Whether a v8/v16 kernel is w4_gemv.cu's persistent ring (v16 of every kind, W4A16's v8, every grouped v8) rather than the rounds. */
function isGemvRing(kind: KernelKind, tile: 'v8' | 'v16', forced = false): boolean {
  return tile === 'v16' || kind === 'w4a16' || forced;
}

/** Tiles of the small-M kernels (w4_gemv.cu). */
function isGemvTile(tile: W4Tile): tile is 'v8' | 'v16' {
  return tile === 'v8' || tile === 'v16';
}

/** Whether tiles v8/v16 can run this kind and shape (N % 16 == 0, M ≤ 16; W4A16 g128 only; any arch). */
export function gemvEligible(mode: QuantMode, m: number, n: number, group: number): boolean {
  const kind = KERNEL_KIND[mode];
  return (kind !== 'w4a16' || group === 128) && n % 16 === 0 && m <= 16;
}

/** Whether tile w can run this kind on this target (sm_90a, IS/FS/W4A16 g128 or PC, N % 128 == 0). */
export function wgmmaEligible(mode: QuantMode, group: number, n: number, arch: string | undefined): boolean {
  const kind = KERNEL_KIND[mode];
  return arch === 'sm_90a' && n % 128 === 0 && (kind === 'pc' || group === 128);
}

export interface W4GemmPlan {
  /** Kernel source file: W4_GEMM_WGMMA_SOURCE (tile w), W4_GEMV_SOURCE (v8, v16) or W4_GEMM_SOURCE. */
  readonly source: string;
  /** Compile `source` with these defines: it then builds only this kind and group's entries (w4SelectDefines). */
  readonly defines: Readonly<Record<string, number>>;
  readonly entry: string;
  readonly tile: W4Tile;
  readonly grid: [number, number, number];
  readonly block: [number, number, number];
  /** Dynamic shared memory bytes (also set CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). */
  readonly smem: number;
  readonly splits: number;
  /** Bytes of the split-K workspace of 4-byte values, any contents (0 when splits = 1): [splits, M, N]
   *  for the mma.sync tiles, splits · ceil(M/bm)·bm · N for tile w / w64. */
  readonly workspaceBytes: number;
  /** Number of u32 tile counters, zero before the first launch; kernels leave them zero (0 when splits = 1). */
  readonly counters: number;
}

export interface W4PlanOptions {
  /** Force a tile (default: by M). */
  tile?: W4Tile;
  /** Force the split-K factor (default: fill the GPU). */
  splits?: number;
  /** Streaming multiprocessors (default 132, H100 SXM). */
  smCount?: number;
  /** Compile target ('sm_90a' enables tile w); default: none, i.e. mma.sync tiles only. */
  arch?: string;
  /**
   * Blocks of the persistent-ring v8/v16 kernels resident per SM (W4GemmLaunch asks the occupancy
   * calculator); default: as many as their shared memory allows on an sm_90 SM.
   */
  gemvBlocksPerSm?: number;
  /**
   * Run v8 on the persistent ring in every mode (w4_gemv.cu's grouped entries: a block reads the
   * step's routing once, then streams many row tiles; the rounds' short blocks would each pay it).
   */
  gemvRing?: boolean;
}

/** Kernel entry-point name for a kind, group size and tile. */
export function w4EntryName(mode: QuantMode, group: number, tile: W4Tile): string {
  const kind = KERNEL_KIND[mode];
  if (isGemvTile(tile)) {
    if (kind === 'w4a16') {
      if (group !== 128) fail('w4a16 GEMM', `group size ${group} unsupported on GPU (128 only)`);
      return `w4a16_gemm_g128_${tile}`;
    }
    if (kind !== 'pc' && ![32, 64, 128].includes(group)) fail(`w4a8 ${kind.toUpperCase()} GEMM`, `group size ${group} unsupported on GPU (32, 64, 128)`);
    return kind === 'pc' ? `w4a8_gemm_pc_${tile}` : `w4a8_gemm_${kind}_g${group}_${tile}`;
  }
  if (isWgmmaTile(tile)) {
    if (kind !== 'pc' && group !== 128) fail(`w4 ${kind.toUpperCase()} GEMM`, `the wgmma tile ${tile} runs IS/FS/W4A16 g128 and PC only (group ${group})`);
    return kind === 'pc' ? `w4a8_gemm_pc_${tile}` : kind === 'w4a16' ? `w4a16_gemm_g128_${tile}` : `w4a8_gemm_${kind}_g128_${tile}`;
  }
  switch (kind) {
    case 'is':
    case 'fs':
      if (![32, 64, 128].includes(group)) fail(`w4a8 ${kind.toUpperCase()} GEMM`, `group size ${group} unsupported on GPU (32, 64, 128)`);
      if (group !== 128 && (tile === 'l' || tile === 'r')) fail(`w4a8 ${kind.toUpperCase()} GEMM`, `group size ${group} has no ${tile} tile (s, m)`);
      return `w4a8_gemm_${kind}_g${group}_${tile}`;
    case 'pc':
      if (tile === 'r') fail('w4a8 PC GEMM', 'no r tile (s, m, l)');
      return `w4a8_gemm_pc_${tile}`;
    case 'w4a16':
      if (group !== 128) fail('w4a16 GEMM', `group size ${group} unsupported on GPU (128 only)`);
      if (tile === 'r') fail('w4a16 GEMM', 'no r tile (s, m, l)');
      return `w4a16_gemm_g128_${tile}`;
  }
}

/**
 * NVRTC defines that compile only this kind and group's kernels (all its tiles) of w4_gemm.cu,
 * w4_gemm_wgmma.cu or w4_gemv.cu: faster builds. Each file guards its entries with
 * `#if !defined(W4_SELECT) || defined(W4_SELECT_<NAME>)`.
 */
export function w4SelectDefines(mode: QuantMode, group: number): Record<string, number> {
  const kind = KERNEL_KIND[mode];
  const name = kind === 'pc' ? 'PC' : kind === 'w4a16' ? 'W4A16' : `${kind.toUpperCase()}_G${group}`;
  return { W4_SELECT: 1, [`W4_SELECT_${name}`]: 1 };
}

/** Dynamic shared memory of one entry point (formula of w4_gemm.cu's header); ring: opts.gemvRing. */
export function w4SmemBytes(mode: QuantMode, group: number, tile: W4Tile, ring = false): number {
  const kind = KERNEL_KIND[mode];
  const t = W4_TILES[tile];
  const eb = kind === 'w4a16' ? 2 : 1;
  // w4_gemm_wgmma.cu (WStage): 1024 (alignment) + STAGES·(X BT·128·EB + W 128·64 + scales 128·4
  // (W4A16: 128·2), rounded up to 1024 B) + epilogue 8 warps·64 tokens·20 floats; W4A16's
  // 128-token tile has 4 stages (41 KB each), every other 7
  if (isGemvTile(tile)) return gemvRingSmemBytes(kind, group, tile, ring);
  if (isWgmmaTile(tile)) {
    const stages = kind === 'w4a16' && tile === 'w' ? 4 : t.stages;
    return 1024 + stages * Math.ceil((t.bm * 128 * eb + t.bn * 64 + t.bn * (eb === 2 ? 2 : 4)) / 1024) * 1024 + 8 * 64 * 20 * 4;
  }
  const sb = kind === 'pc' ? 0 : kind === 'w4a16' ? 2 : 4;
  const groupsPerTile = kind === 'pc' ? 0 : 128 / group;
  return t.stages * (t.bm * 128 * eb + t.bn * 64) + (t.stages + 1) * groupsPerTile * t.bn * sb;
}

/**
 * Dynamic shared memory of a persistent-ring v8/v16 block (w4_gemv.cu's GvRing; the kernel traps when given less):
 * per warp and stage the activations (8 tokens per n8 token tile, 128 B per token and 128-k half;
 * W4A16's fp16 k-tile is two halves), the weights (1 KiB) and the row tile's scales (rounded up to
 * 128 B), then two reduction buffers of warps × 4 values × 32 lanes per token tile.
 */
function gemvRingSmemBytes(kind: KernelKind, group: number, tile: 'v8' | 'v16', ring: boolean): number {
  if (!isGemvRing(kind, tile, ring)) return 0;  // the rounds: static shared memory only
  const warps = GEMV_RING.warps, stages = GEMV_RING.stages[tile], tokenTiles = W4_TILES[tile].bm / 8, halves = kind === 'w4a16' ? 2 : 1;
  const scaleBytes = kind === 'w4a16' ? 32 : kind === 'pc' ? 0 : (128 / group) * 16 * 4;
  const stage = tokenTiles * halves * 8 * 128 + 1024 + Math.ceil(scaleBytes / 128) * 128;
  return warps * stages * stage + 2 * warps * tokenTiles * 4 * 32 * 4;
}

/** Check a GEMM shape against the kernels' limits (one-line errors). */
export function checkW4Shape(m: number, n: number, k: number): void {
  const where = `w4 GEMM ${m}x${n}x${k}`;
  if (!Number.isInteger(m) || m < 1) fail(where, `M = ${m} must be a positive integer`);
  if (!Number.isInteger(n) || n < 8 || n % 8 !== 0) fail(where, `N = ${n} must be a positive multiple of 8`);
  if (!Number.isInteger(k) || k < 128 || k % 128 !== 0) fail(where, `K = ${k} must be a positive multiple of 128`);
}

/** Tile w's split-K: most splits, fewest k-tiles per split. */
const W_MAX_SPLITS = 4;
const W_MIN_KTILES_PER_SPLIT = 8;

/**
 * Split-K factor of the persistent wgmma tile w (every kind), fit on the H200 (bench gemm
 * --w4-splits, docs/KERNELS.md): as far as every tile-split still runs in one round (tiles · S <=
 * SMs; splits that leave a block several tile-splits were up to 2x slower) with at least 8 k-tiles
 * each, S <= 4. Long K (the down-projections): S = 2-4 made IS 1.3-2.7x faster at M = 64-256.
 * K = 4096 (32 k-tiles), after the branch-free reduction: S = 2-4 gains 5-12% wherever the tiles
 * fit (o-proj M = 128: 20.5 -> 18.4 µs at S = 4; before that fix the same splits lost up to 20%).
 */
export function wgmmaSplits(tiles: number, kTiles: number, smCount: number): number {
  let S = 1;
  while (S < W_MAX_SPLITS && tiles * (S + 1) <= smCount && kTiles / (S + 1) >= W_MIN_KTILES_PER_SPLIT) S++;
  return S;
}

/** Choose entry point, grid and split-K for y[M,N] = x[M,K]·Wᵀ. */
export function planW4Gemm(mode: QuantMode, group: number, m: number, n: number, k: number, opts: W4PlanOptions = {}): W4GemmPlan {
  const kind = KERNEL_KIND[mode];
  checkW4Shape(m, n, k);
  const g = kind === 'pc' ? k : group;
  if (kind !== 'pc' && k % g !== 0) fail(`w4 GEMM ${m}x${n}x${k}`, `K is not a multiple of the group size ${g}`);
  // Measured on H100 (docs/KERNELS.md): s up to M = 16, m with split-K up to 128, then l.
  // g32/g64 IS/FS exist in the s and m tiles only. IS g128 switches to r (2 blocks/SM) once the
  // grid has blocks enough for two per SM: M >= 1024, or M >= 512 with >= 4 blocks per SM
  // (1.02-1.10x faster there; slower on smaller grids). FS g128 stays on l (r was no faster).
  const smCount = opts.smCount ?? 132;
  const byM: W4Tile = m <= 16 ? 's' : m <= 128 || ((kind === 'is' || kind === 'fs') && group !== 128) ? 'm' : 'l';
  const lBlocks = Math.ceil(n / W4_TILES.l.bn) * Math.ceil(m / W4_TILES.l.bm);
  const useR = kind === 'is' && group === 128 && byM === 'l' && (m >= 1024 || (m >= 512 && lBlocks >= 4 * smCount));
  const canW = wgmmaEligible(mode, group, n, opts.arch);
  const canV = gemvEligible(mode, m, n, group);
  // Tile w from M = 17 on, every kind. Its persistent grid (one block per 128x128 tile) leaves SMs
  // idle on N = 4096 at M <= 256; there it takes split-K (wgmmaSplits). (FS once kept S = 1 and
  // fell back to the m tile: its split-K reduction issued one L2 load per basic block; with the
  // branch-free reduction FS splits as well as IS: docs/KERNELS.md.)
  // Up to M = 64 the 64-token tile w64 (half the MMA work of w's 128-token tile); above, w64 where
  // its tiles still fit one round on the SMs, or (M = 129-256) where w's last token tile would be at
  // most half full and w needs several rounds anyway (H200, M = 96-256: o-proj 18.7 -> 14.2 µs at
  // M = 128, LLaMA-3-8B qkv 19.9 -> 15.3, gate_up at M = 192 65.4 -> 52.0; docs/KERNELS.md).
  const nN = Math.ceil(n / W4_TILES.w.bn);
  const w64Fits = nN * Math.ceil(m / W4_TILES.w64.bm) <= smCount;
  const wHalfEmpty = m > 128 && m <= 256 && m % 128 !== 0 && m % 128 <= 64 && nN * Math.ceil(m / W4_TILES.w.bm) > smCount;
  const wTile: W4Tile = m <= W4_TILES.w64.bm || w64Fits || wHalfEmpty ? 'w64' : 'w';
  // A forced split-K factor > 1 rules out v8/v16 (they have none).
  const split = opts.splits !== undefined && opts.splits > 1;
  const byKernel: W4Tile = canV && !split ? (m <= 8 ? 'v8' : 'v16') : canW && m >= W4_WGMMA_MIN_M ? wTile : useR ? 'r' : byM;
  const tile: W4Tile = opts.tile ?? byKernel;
  if (isWgmmaTile(tile) && !canW) {
    fail(`w4 GEMM ${m}x${n}x${k}`, `tile ${tile} needs sm_90a (got ${opts.arch ?? 'no arch'}), IS/FS/W4A16 g128 or PC, and N % 128 == 0`);
  }
  if (isGemvTile(tile) && (!canV || m > W4_TILES[tile].bm)) {
    fail(`w4 GEMM ${m}x${n}x${k}`, `tile ${tile} needs M <= ${W4_TILES[tile].bm}, N % 16 == 0 and (W4A16) group 128`);
  }
  const t = W4_TILES[tile];
  const kTiles = k / 128;
  const wGrid = Math.ceil(n / t.bn) * Math.ceil(m / t.bm);  // tile w / w64: its bn × bm tiles
  let splits: number;
  if (opts.splits !== undefined) {
    splits = opts.splits;
    if (!Number.isInteger(splits) || splits < 1 || splits > kTiles) fail(`w4 GEMM ${m}x${n}x${k}`, `splits = ${splits} must be in 1..${kTiles}`);
    if (splits > 1 && isGemvTile(tile)) fail(`w4 GEMM ${m}x${n}x${k}`, `tile ${tile} has no split-K`);
  } else if (isGemvTile(tile)) {
    splits = 1;  // split-K across v blocks was slower at every shape and S (shorter blocks: h200-gemm-probe-gemv-splits-da6b6ba.txt)
  } else if (isWgmmaTile(tile)) {
    splits = wgmmaSplits(wGrid, kTiles, smCount);
  } else {
    // Blocks to aim for (fit on H100 timings, docs/KERNELS.md): s 2.5 per SM (3 fit), m 2, l and r 1.
    const target = (tile === 's' ? 2.5 : tile === 'm' ? 2 : 1) * smCount;
    const blocks = Math.ceil(n / t.bn) * Math.ceil(m / t.bm);
    splits = Math.max(1, Math.min(Math.round(target / blocks), Math.floor(kTiles / 2)));
  }
  // tile w is persistent: grid (blocks per split, splits), each block loops over tiles for its split;
  // the v tiles' ring too: as many blocks as are resident (at most one per 16 weight rows), each
  // looping over row tiles; the v8 rounds: one block per 16 weight rows; mma.sync tiles:
  // (N/BN, M/BM, splits)
  const smem = w4SmemBytes(mode, group, tile, opts.gemvRing);
  const ring = isGemvTile(tile) && isGemvRing(kind, tile, opts.gemvRing);
  const gemvPerSm = opts.gemvBlocksPerSm ?? Math.max(1, Math.floor(SM_SHARED_BYTES / (smem + BLOCK_RESERVED_SMEM)));
  const grid: [number, number, number] = isWgmmaTile(tile) ? [Math.min(wGrid, Math.max(1, Math.floor(smCount / splits))), splits, 1]
    : isGemvTile(tile) ? [ring ? Math.min(n / t.bn, gemvPerSm * smCount) : n / t.bn, 1, 1]
    : [Math.ceil(n / t.bn), Math.ceil(m / t.bm), splits];
  const tilesForCounters = isWgmmaTile(tile) ? wGrid : grid[0] * grid[1];
  return {
    source: isWgmmaTile(tile) ? W4_GEMM_WGMMA_SOURCE : isGemvTile(tile) ? W4_GEMV_SOURCE : W4_GEMM_SOURCE,
    defines: w4SelectDefines(mode, group),
    entry: w4EntryName(mode, group, tile),
    tile,
    grid,
    block: [ring ? 32 * GEMV_RING.warps : t.threads, 1, 1],
    smem,
    splits,
    // tile w keeps whole bm-token tiles (its partials in register order); the mma.sync tiles [splits, M, N]
    workspaceBytes: splits > 1 ? splits * (isWgmmaTile(tile) ? Math.ceil(m / t.bm) * t.bm : m) * n * 4 : 0,
    counters: splits > 1 ? tilesForCounters : 0,
  };
}

/** Activation quantization (src/gpu/kernels/quantize_act.cu): grid (M), block (256), no smem. */
export const QUANTIZE_ACT = { source: 'src/gpu/kernels/quantize_act.cu', entry: 'quantize_act_per_token', block: 256 } as const;
