// W4A16 on the CPU: dequantized weights q·s (exact in fp32) times fp32 activations, dense matmul.
import { fail } from '../core/errors.ts';
import { heapFree, matmulF32, toHeap } from '../core/matmul.ts';
import type { Linear } from '../model/linear.ts';
import { dequantize, type QuantizedWeight } from './rtn.ts';

export class W4A16Linear implements Linear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly weight: Float32Array; // q·s [N, K], in the shared heap until dispose()
  private disposed = false;

  constructor(qw: QuantizedWeight) {
    this.inFeatures = qw.inFeatures;
    this.outFeatures = qw.outFeatures;
    this.weight = toHeap(dequantize(qw));
  }

  forward(x: Float32Array, rows: number): Float32Array {
    if (this.disposed) fail('W4A16 linear', 'used after dispose()');
    return matmulF32(x, rows, this.inFeatures, this.weight, this.outFeatures);
  }

  /** Give the dequantized weights back to the shared heap. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    heapFree(this.weight);
  }
}
