// The decode attention's split rule (src/backends/cuda/decode-splits.ts) on the H200 cases its probe
// measured (bench/results/h200-attention-decode-probe-*.txt, 132 SMs), and its limits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeAttentionSplits, fusedDecodeFits } from '../../src/backends/cuda/decode-splits.ts';

test('decode attention splits: the probe\'s best counts on the H200; one split from a block per SM on; never more than the tiles', () => {
  const sms = 132;
  // (batch · KV heads, tiles of --max-seq) → the split count within 2% of the probe's best
  assert.equal(decodeAttentionSplits(1 * 32, sms, 9), 8);   // LLaMA-2-7B batch 1, 576 positions (best 6–8)
  assert.equal(decodeAttentionSplits(1 * 32, sms, 65), 8);  // LLaMA-2-7B batch 1, 4096 (best 8)
  assert.equal(decodeAttentionSplits(1 * 8, sms, 9), 8);    // LLaMA-3-8B batch 1, 576 (best 8)
  assert.equal(decodeAttentionSplits(1 * 8, sms, 65), 8);   // LLaMA-3-8B batch 1, 4096 (best 8–12)
  assert.equal(decodeAttentionSplits(16 * 8, sms, 33), 1);  // LLaMA-3-8B batch 16 (best 1)
  assert.equal(decodeAttentionSplits(16 * 32, sms, 9), 1);  // LLaMA-2-7B batch 16 and up (best 1)
  // in between: about 256 blocks; a short cache caps the count at one split per tile
  assert.equal(decodeAttentionSplits(64, sms, 40), 4);
  assert.equal(decodeAttentionSplits(8, sms, 3), 3);
  assert.equal(decodeAttentionSplits(8, sms, 1), 1);
});

test('the fused decode attention serves LLaMA-2/3, Mistral, Mixtral and Qwen2 shapes; MQA past 16 heads a KV head and rows past 8192 values fall back', () => {
  const fits = fusedDecodeFits;
  assert.ok(fits(32, 32, 128));   // LLaMA-2-7B
  assert.ok(fits(32, 8, 128));    // LLaMA-3-8B, Mistral-7B, Mixtral-8x7B
  assert.ok(fits(64, 8, 128));    // LLaMA-2/3-70B: rep 8, a row of 8192
  assert.ok(fits(14, 2, 64));     // Qwen2-0.5B
  assert.ok(!fits(71, 1, 64));    // Falcon-7B: 71 query heads on one KV head
  assert.ok(!fits(128, 8, 128));  // a 16384-value row
});
