// cuBLASLt baselines on a real GPU: int8 (int32 out) bit-exact against an integer CPU GEMM, fp16
// within a named tolerance of a float64 reference on the same fp16 inputs. Skipped without a GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/core/dtype.ts';
import { Rng } from '../../src/core/rng.ts';
import { CublasLtGemm } from '../../src/gpu/gemm-baselines.ts';
import { Gpu } from '../../src/gpu/runtime.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

/** fp16 output: one fp16 rounding (2^-11 relative, doubled for slack) plus fp32 accumulation
 *  error in any summation order (K·2^-24 relative to Σ|x·w|). */
const FP16_OUT_REL_TOL = 2 ** -10;
const FP32_ACC_REL_TOL = 2 ** -24;

const SHAPES: [number, number, number][] = [[1, 256, 512], [3, 64, 128], [17, 384, 1024], [64, 4096, 4096], [130, 520, 264]];

test('cuBLASLt int8 GEMM (int32 out) is bit-exact vs CPU integer GEMM', { skip }, () => {
  const gpu = Gpu.open();
  const rng = new Rng(11);
  for (const [M, N, K] of SHAPES) {
    const x = Int8Array.from({ length: M * K }, () => rng.int(-127, 127));
    const w = Int8Array.from({ length: N * K }, () => rng.int(-127, 127));
    const dx = gpu.upload(x);
    const dw = gpu.upload(w);
    const dy = gpu.alloc(M * N * 4);
    gpu.memset(dy, 0xa5); // poison
    const gemm = new CublasLtGemm(gpu, 'int8', M, N, K);
    gemm.run(dx, dw, dy);
    const y = gpu.download(dy, new Int32Array(M * N));
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += x[m * K + k]! * w[n * K + k]!;
        if (y[m * N + n] !== acc) assert.fail(`int8 M=${M} N=${N} K=${K}: y[${m},${n}] = ${y[m * N + n]}, expected ${acc}`);
      }
    }
    gemm.destroy();
    for (const b of [dx, dw, dy]) b.free();
  }
});

test('cuBLASLt fp16 GEMM is within fp16 rounding + fp32 accumulation of a float64 reference', { skip }, () => {
  const gpu = Gpu.open();
  const rng = new Rng(12);
  for (const [M, N, K] of SHAPES) {
    const x16 = f32ArrayToF16(new Float32Array(rng.normals(M * K, 1)));
    const w16 = f32ArrayToF16(new Float32Array(rng.normals(N * K, 0.05)));
    const x = f16ArrayToF32(x16);
    const w = f16ArrayToF32(w16);
    const dx = gpu.upload(x16);
    const dw = gpu.upload(w16);
    const dy = gpu.alloc(M * N * 2);
    gpu.memset(dy, 0xff); // poison (fp16 NaN)
    const gemm = new CublasLtGemm(gpu, 'fp16', M, N, K);
    gemm.run(dx, dw, dy);
    const y = f16ArrayToF32(gpu.download(dy, new Uint16Array(M * N)));
    let worst = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let ref = 0;
        let mag = 0;
        for (let k = 0; k < K; k++) {
          const p = x[m * K + k]! * w[n * K + k]!;
          ref += p;
          mag += Math.abs(p);
        }
        const tol = FP16_OUT_REL_TOL * Math.abs(ref) + K * FP32_ACC_REL_TOL * mag + 2 ** -24;
        const err = Math.abs(y[m * N + n]! - ref);
        worst = Math.max(worst, err / tol);
        if (!(err <= tol)) assert.fail(`fp16 M=${M} N=${N} K=${K}: y[${m},${n}] = ${y[m * N + n]}, ref ${ref}, tol ${tol}`);
      }
    }
    assert.ok(worst > 0, 'the output is not identical to the float64 reference anywhere: suspicious');
    gemm.destroy();
    for (const b of [dx, dw, dy]) b.free();
  }
});
