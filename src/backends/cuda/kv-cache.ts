// The fp16 KV cache of the GPU engine: a fixed number of sequence slots allocated up front
// (`--max-batch`, `--max-seq`), per layer one K and one V buffer laid out
// [slot][kv head][position][head dim], written by rope_kv.cu and read by attention.cu.
// A paged cache would replace this class and the (slot, position) addressing of those two kernels.
import { fail } from '../../core/errors.ts';
import type { DeviceBuffer, Gpu } from '../../gpu/runtime.ts';
import type { ModelConfig } from '../../model/config.ts';

export class KvCache {
  readonly k: DeviceBuffer[] = [];
  readonly v: DeviceBuffer[] = [];

  constructor(gpu: Gpu, readonly config: ModelConfig, readonly slots: number, readonly maxSeq: number) {
    if (!Number.isInteger(slots) || slots < 1) fail('--max-batch', `must be a positive integer (got ${slots})`);
    if (!Number.isInteger(maxSeq) || maxSeq < 1) fail('--max-seq', `must be a positive integer (got ${maxSeq})`);
    if (maxSeq > config.maxSeq) fail('--max-seq', `${maxSeq} exceeds the model's context of ${config.maxSeq}`);
    const bytes = KvCache.bytesPerLayer(config, slots, maxSeq);
    try {
      for (let l = 0; l < config.nLayers; l++) {
        this.k.push(gpu.alloc(bytes));
        this.v.push(gpu.alloc(bytes));
      }
    } catch (e) {
      this.free();
      const total = 2 * config.nLayers * bytes;
      fail('kv cache', `cannot allocate ${(total / 2 ** 30).toFixed(2)} GiB for ${slots} sequences of ${maxSeq} positions (${(e as Error).message}); lower --max-batch or --max-seq`);
    }
  }

  static bytesPerLayer(c: ModelConfig, slots: number, maxSeq: number): number {
    return slots * c.nKvHeads * maxSeq * c.headDim * 2;
  }

  free(): void {
    for (const b of [...this.k, ...this.v]) if (!b.freed) b.free();
  }
}
