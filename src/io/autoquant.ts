// Reading the int4 linears of AutoGPTQ and AutoAWQ checkpoints (their int32 packings), to a neutral
// unpacked form. AutoGPTQ ("gptq", checkpoint_format gptq = v1, or gptq_v2): qweight I32
// [K/8, N] with input rows k = 8r+j in nibble j of row r; qzeros I32 [groups, N/8] with outputs
// n = 8c+j in nibble j, stored as zero−1 in v1 (the dequantization adds 1 back), as is in v2;
// scales F16 [groups, N]; g_idx I32 [K] (group of each input; act-order makes it a permutation
// of the natural k/G); W[n,k] = s[g,n]·(iw[k,n] − z[g,n]), g = g_idx[k]. AutoAWQ (GEMM version):
// qweight I32 [K, N/8] and qzeros I32 [groups, N/8] packed along N in the order
// [0, 2, 4, 6, 1, 3, 5, 7] (nibble i holds output 8c + order[i]), scales F16 [groups, N], no g_idx
// (natural groups), W[n,k] = s·(iw − z). Pack functions (the inverse) write those layouts, for tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../core/dtype.ts';
import type { TensorSource, TensorToWrite } from './safetensors.ts';
import { readJson } from './qformat.ts';

export type ForeignFormat = 'autogptq' | 'autoawq';

export interface ForeignConfig {
  format: ForeignFormat;
  bits: 4;
  groupSize: number; // -1: per channel
  sym: boolean;
  descAct: boolean;
  /** GPTQ v1 stores zero−1 */
  zeroOffset: 0 | 1;
}

/** One foreign int4 linear, unpacked: iw [N, K] (0..15), zeros [N, groups] (0..16), scales [N, groups], gIdx [K]. */
export interface ForeignLinear {
  N: number;
  K: number;
  groups: number;
  iw: Uint8Array;
  zeros: Uint8Array;
  scales: Float32Array;
  gIdx: Int32Array;
}

export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

/** The foreign quantization config of a model directory (config.json quantization_config, or AutoGPTQ's quantize_config.json). */
export function foreignConfigOf(dir: string): ForeignConfig {
  const cfg = readJson(path.join(dir, 'config.json'));
  let q = cfg['quantization_config'] as Record<string, unknown> | undefined;
  const side = path.join(dir, 'quantize_config.json');
  if (!q && fs.existsSync(side)) q = { quant_method: 'gptq', ...readJson(side) };
  if (!q || typeof q !== 'object') fail(dir, 'no quantization_config (expected an AutoGPTQ or AutoAWQ checkpoint)');
  const method = String(q['quant_method'] ?? '').toLowerCase();
  if (q['bits'] !== 4 && q['w_bit'] !== 4) fail(dir, `only 4-bit checkpoints are supported (bits ${JSON.stringify(q['bits'] ?? q['w_bit'])})`);
  const groupSize = Number(q['group_size'] ?? q['q_group_size']);
  if (!Number.isInteger(groupSize) || !(groupSize === -1 || groupSize > 0)) fail(dir, `bad group_size ${JSON.stringify(q['group_size'])}`);
  if (method === 'gptq') {
    const fmt = String(q['checkpoint_format'] ?? 'gptq');
    if (fmt !== 'gptq' && fmt !== 'gptq_v2') fail(dir, `unsupported GPTQ checkpoint_format '${fmt}' (gptq or gptq_v2)`);
    return { format: 'autogptq', bits: 4, groupSize, sym: q['sym'] !== false, descAct: q['desc_act'] === true, zeroOffset: fmt === 'gptq' ? 1 : 0 };
  }
  if (method === 'awq') {
    const version = String(q['version'] ?? 'gemm').toLowerCase();
    if (version !== 'gemm') fail(dir, `unsupported AWQ version '${version}' (gemm only)`);
    return { format: 'autoawq', bits: 4, groupSize, sym: q['zero_point'] === false, descAct: false, zeroOffset: 0 };
  }
  return fail(dir, `quant_method '${method}' is not AutoGPTQ (gptq) or AutoAWQ (awq)`);
}

function readI32(src: TensorSource, name: string, shape: number[]): Int32Array {
  if (!src.has(name)) fail(name, 'missing tensor');
  const info = src.info(name);
  if (info.dtype !== 'I32' || info.shape.join(',') !== shape.join(',')) fail(name, `must be I32 [${shape.join(', ')}], got ${info.dtype} [${info.shape.join(', ')}]`);
  return src.read(name) as Int32Array;
}

/** Unpack the foreign linear `name` (e.g. model.layers.0.self_attn.q_proj). */
export function readForeignLinear(src: TensorSource, name: string, cfg: ForeignConfig): ForeignLinear {
  const si = src.info(`${name}.scales`);
  if (si.dtype !== 'F16' || si.shape.length !== 2) fail(`${name}.scales`, `must be F16 [groups, N], got ${si.dtype} [${si.shape.join(', ')}]`);
  const [groups, N] = si.shape as [number, number];
  if (N % 8 !== 0) fail(name, `out_features ${N} is not a multiple of 8`);
  const sT = f16ArrayToF32(src.read(`${name}.scales`) as Uint16Array); // [groups, N]
  let K: number;
  const iw = (k: number, n: number, v: number) => { iwArr[n * K + k] = v; };
  let iwArr: Uint8Array;
  const zeros = new Uint8Array(N * groups);
  if (cfg.format === 'autogptq') {
    const rows = src.info(`${name}.qweight`).shape[0]!;
    K = rows * 8;
    const qw = readI32(src, `${name}.qweight`, [rows, N]);
    iwArr = new Uint8Array(N * K);
    for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) { const v = qw[r * N + n]!; for (let j = 0; j < 8; j++) iw(8 * r + j, n, (v >>> (4 * j)) & 15); }
    const qz = readI32(src, `${name}.qzeros`, [groups, N / 8]);
    for (let g = 0; g < groups; g++) for (let c = 0; c < N / 8; c++) { const v = qz[g * (N / 8) + c]!; for (let j = 0; j < 8; j++) zeros[(8 * c + j) * groups + g] = ((v >>> (4 * j)) & 15) + cfg.zeroOffset; }
  } else {
    K = src.info(`${name}.qweight`).shape[0]!;
    const qw = readI32(src, `${name}.qweight`, [K, N / 8]);
    iwArr = new Uint8Array(N * K);
    for (let k = 0; k < K; k++) for (let c = 0; c < N / 8; c++) { const v = qw[k * (N / 8) + c]!; for (let i = 0; i < 8; i++) iw(k, 8 * c + AWQ_ORDER[i]!, (v >>> (4 * i)) & 15); }
    const qz = readI32(src, `${name}.qzeros`, [groups, N / 8]);
    for (let g = 0; g < groups; g++) for (let c = 0; c < N / 8; c++) { const v = qz[g * (N / 8) + c]!; for (let i = 0; i < 8; i++) zeros[(8 * c + AWQ_ORDER[i]!) * groups + g] = (v >>> (4 * i)) & 15; }
  }
  const G = cfg.groupSize === -1 ? K : cfg.groupSize;
  if (K % G !== 0 || K / G !== groups) fail(name, `${groups} scale groups do not match K = ${K} and group_size ${cfg.groupSize}`);
  const gIdx = src.has(`${name}.g_idx`) ? Int32Array.from(readI32(src, `${name}.g_idx`, [K])) : Int32Array.from({ length: K }, (_, k) => Math.floor(k / G));
  for (const g of gIdx) if (g < 0 || g >= groups) fail(`${name}.g_idx`, `group ${g} outside 0..${groups - 1}`);
  const scales = new Float32Array(N * groups);
  for (let g = 0; g < groups; g++) for (let n = 0; n < N; n++) scales[n * groups + g] = sT[g * N + n]!;
  return { N, K, groups, iw: iwArr, zeros, scales, gIdx };
}

/** The foreign linear's dequantized weights W[n,k] = s·(iw − z) as fp32 [N, K]. */
export function dequantizeForeign(l: ForeignLinear): Float32Array {
  const w = new Float32Array(l.N * l.K);
  for (let n = 0; n < l.N; n++)
    for (let k = 0; k < l.K; k++) {
      const g = l.gIdx[k]!;
      w[n * l.K + k] = Math.fround(l.scales[n * l.groups + g]! * (l.iw[n * l.K + k]! - l.zeros[n * l.groups + g]!));
    }
  return w;
}

/** Pack a foreign linear in its checkpoint layout (the inverse of readForeignLinear; for tests and reports). */
export function packForeignLinear(name: string, l: ForeignLinear, cfg: ForeignConfig, withGIdx: boolean): TensorToWrite[] {
  const { N, K, groups } = l;
  const scalesT = new Float32Array(groups * N);
  for (let g = 0; g < groups; g++) for (let n = 0; n < N; n++) scalesT[g * N + n] = l.scales[n * groups + g]!;
  const qz = new Int32Array(groups * (N / 8));
  const out: TensorToWrite[] = [{ name: `${name}.scales`, dtype: 'F16', shape: [groups, N], data: f32ArrayToF16(scalesT) }];
  if (cfg.format === 'autogptq') {
    const qw = new Int32Array((K / 8) * N);
    for (let r = 0; r < K / 8; r++) for (let n = 0; n < N; n++) { let v = 0; for (let j = 0; j < 8; j++) v |= l.iw[n * K + 8 * r + j]! << (4 * j); qw[r * N + n] = v; }
    for (let g = 0; g < groups; g++) for (let c = 0; c < N / 8; c++) {
      let v = 0;
      for (let j = 0; j < 8; j++) {
        const z = l.zeros[(8 * c + j) * groups + g]! - cfg.zeroOffset;
        if (z < 0 || z > 15) fail(name, `zero point ${z + cfg.zeroOffset} cannot be stored in this GPTQ format`);
        v |= z << (4 * j);
      }
      qz[g * (N / 8) + c] = v;
    }
    out.push({ name: `${name}.qweight`, dtype: 'I32', shape: [K / 8, N], data: qw }, { name: `${name}.qzeros`, dtype: 'I32', shape: [groups, N / 8], data: qz });
    if (withGIdx) out.push({ name: `${name}.g_idx`, dtype: 'I32', shape: [K], data: l.gIdx });
  } else {
    const qw = new Int32Array(K * (N / 8));
    for (let k = 0; k < K; k++) for (let c = 0; c < N / 8; c++) { let v = 0; for (let i = 0; i < 8; i++) v |= l.iw[(8 * c + AWQ_ORDER[i]!) * K + k]! << (4 * i); qw[k * (N / 8) + c] = v; }
    for (let g = 0; g < groups; g++) for (let c = 0; c < N / 8; c++) { let v = 0; for (let i = 0; i < 8; i++) v |= l.zeros[(8 * c + AWQ_ORDER[i]!) * groups + g]! << (4 * i); qz[g * (N / 8) + c] = v; }
    out.push({ name: `${name}.qweight`, dtype: 'I32', shape: [K, N / 8], data: qw }, { name: `${name}.qzeros`, dtype: 'I32', shape: [groups, N / 8], data: qz });
  }
  return out;
}
