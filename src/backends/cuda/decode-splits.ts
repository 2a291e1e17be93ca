// Whether a decode step can run attention_decode.cu, and how many ways it splits each sequence's keys: none
// once the (sequence, KV head) pairs give about a block per SM; below that about 256 blocks, at most
// 8 splits (a split's merge and its arrival cost ~2 µs: more splits cost more than their shorter
// walk saves) and at most one per 64-key tile. Fitted on the H200 probe (gpu-dev/experiments/attention,
// bench/results/h200-attention-decode-probe-*.txt): LLaMA-2-7B at batch 1 best at 6–8 splits (256
// blocks), LLaMA-3-8B at batch 1 at 8 (64 blocks), LLaMA-3-8B at batch 16 (128 pairs) and every
// larger batch unsplit, at KV lengths 576 to 4096. End to end at batch 1 (INTSCALE_DECODE_SPLITS,
// bench/results/h200-e2e-decode-splits-*.txt): LLaMA-2-7B flat from 2 to 8 splits (530–537
// tokens/s), LLaMA-3-8B best at 6–8 (465 against 457 at 3).

import { ATTN_DECODE_MAX_REP, ATTN_DECODE_MAX_ROW } from './kernels.ts';

const TARGET_BLOCKS = 256;
const MAX_SPLITS = 8;

/** Splits for `pairs` = batch · KV heads on a GPU of `sms` SMs, a cache of `tiles` 64-key tiles. */
export function decodeAttentionSplits(pairs: number, sms: number, tiles: number): number {
  if (pairs >= 0.9 * sms) return 1;
  return Math.max(1, Math.min(MAX_SPLITS, Math.round(TARGET_BLOCKS / pairs), tiles));
}

/**
 * Whether attention_decode.cu serves a model's decode steps: at most 16 query heads per KV head
 * (a block's MMA rows) and, for an int8 output, a row of at most 8192 values (held in registers by
 * the block that quantizes it); else decode runs the prefill kernels (rope_kv, attention.cu unsplit).
 */
export function fusedDecodeFits(nHeads: number, nKvHeads: number, headDim: number): boolean {
  return nHeads / nKvHeads <= ATTN_DECODE_MAX_REP && nHeads * headDim <= ATTN_DECODE_MAX_ROW;
}
