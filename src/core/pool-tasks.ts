// JavaScript tasks that the matmul pool's threads run besides the GEMM (src/core/matmul-pool.ts):
// the calibration pipeline's attention over (sequence, KV head) pairs and SwiGLU over element
// ranges, on arrays in the shared WebAssembly heap. Plain JavaScript text, because the workers are
// created from source (no TypeScript loader there); the main thread builds its copy of the same
// functions from the same text, so every thread runs identical code and the result does not depend
// on which thread took which task.
//
// Each task function is `(a, lo, hi, thread)`: a = the job's argument words (Int32Array), [lo, hi)
// the task's index range, thread = 0 for the main thread, 1.. for the workers (selects the
// thread's scratch). Pointers and strides in the arguments are BYTE offsets, like the GEMM's.

/** Job kinds (0 is the GEMM itself). */
export const TASK_ATTENTION = 1;
export const TASK_SWIGLU = 2;
export const TASK_TRANSPOSE = 3;
export const TASK_GRAM_BAND = 4;
export const TASK_PANEL64 = 5;
export const TASK_SYRK64 = 6;
export const TASK_TRINV64 = 7;
export const TASK_GPTQ_COLUMNS = 8;

/** Words of the GPTQ task's parameter block (see gptqColumns). */
export const GPTQ_PARAM_WORDS = 11;

/** Query rows per causal block of the attention task: scores are computed only for keys < the block's end. */
export const ATTN_BLOCK_ROWS = 64;

/** Floats of per-thread scratch the attention task needs for T positions of head size hd. */
export function attentionScratchFloats(T: number, hd: number): number {
  return hd * T + ATTN_BLOCK_ROWS * T;
}

/**
 * `(memory, mm) => tasks`, tasks[kind] the task function of that kind.
 *
 * attention: a = [q, k, v, out, S, T, nHeads, nKv, hd, window (0: none), scratch, scratchBytes];
 *   q, out [S·T, nHeads·hd], k, v [S·T, nKv·hd] (q and k already rotated); task index t is the pair
 *   (sequence t / nKv, KV head t % nKv): vᵀ of that head into the thread's scratch, then for each
 *   of its query heads and each block of ATTN_BLOCK_ROWS query rows, scores against keys
 *   0..block end (one GEMM), causal softmax with scale 1/sqrt(hd) (keys outside the sliding window,
 *   if any, get 0), and P·V (one GEMM) written into out.
 * swiglu: a = [gate, up, n]; gate[i] ← silu(gate[i])·up[i] for i in [lo, hi).
 * transpose: a = [src, M, K, dst]; dst[k, m] = src[m, k] for the rows k in [lo, hi) of dst [K, M].
 * gramBand: a = [xt, M, K, acc, band, scratch, scratchBytes]; xt = Xᵀ [K, M] (fp32), acc [K, K]
 *   float64; task index t is the band of output rows b = nBands−1−t (the largest first): its fp32
 *   product block Xᵀ[b0:b1]·X[:, 0:b1] (one GEMM into the thread's scratch, [band, K] floats), then
 *   its part on or below the diagonal added into acc.
 * Blocked float64 Cholesky A = L·Lᵀ (L in A's lower triangle, A [n, n] row-major) and L⁻¹, for
 * linalg.ts; block columns [j0, j1):
 * panel64: a = [A, n, j0, j1]; for the rows i = j1 + [lo, hi): L[i, j0:j1] = A[i, j0:j1]·L[j0:j1, j0:j1]⁻ᵀ
 *   (forward substitution against the factored diagonal block).
 * syrk64: a = [A, n, j0, j1, nb]; task t is the row block b = nBlocks−1−t (the largest first) of
 *   the trailing matrix, rows [r0, r1) with r0 = j1 + b·nb: A[r0:r1, j1:r1] −= P[r0:r1]·P[j1:r1]ᵀ,
 *   P = L[:, j0:j1] (one mm64; entries above the diagonal are touched but never read).
 * trinv64: a = [L, XT, n, nb, scratch, scratchBytes]; task t is the block column J = [t·nb, ...)
 *   of X = L⁻¹, stored transposed (XT[j, i] = X[i, j], XT zeroed by the caller): the diagonal
 *   block by forward substitution, then each block row I below it from
 *   L[I, I]·X[I, J] = −Σ_{K=J}^{I−1} L[I, K]·X[K, J] (one mm64 into the thread's scratch, then
 *   forward substitution). Block columns are independent.
 * gptqColumns: a = [params, i1, i2, c0, c1]; params (GPTQ_PARAM_WORDS int32 in the heap) =
 *   [wp, u, err, scales, perm, qp, loss, K, G, groups, B] (u: the block's diagonal block U[i1:i2, i1:i2],
 *   [B, B] float64): for the rows [lo, hi) of the permuted
 *   float64 weights wp [N, K], GPTQ's columns c0..c1 of the block [i1, i2) (gptq.ts): q =
 *   clamp(rint(fp32(fp32(w)/s)), ±7) into qp (int8), err = (w − q·s)/U[i,i] into err [N, B]
 *   (float64), the later columns of the block updated by −err·U[i, j]; loss[n] += err²/2.
 *   Rows are independent, so any split gives the sequential result.
 */
export const POOL_TASKS_SOURCE = `(function makeTasks(memory, k) {
  const mm = k.mm, mm64 = k.mm64;
  const BT = ${ATTN_BLOCK_ROWS};
  function attention(a, lo, hi, thread) {
    const f = new Float32Array(memory.buffer);
    const q = a[0], k = a[1], v = a[2], out = a[3], T = a[5], nHeads = a[6], nKv = a[7], hd = a[8];
    const W = a[9] > 0 ? a[9] : Infinity, scratch = a[10] + thread * a[11];
    const qDim = nHeads * hd, kvDim = nKv * hd, rep = nHeads / nKv, scale = 1 / Math.sqrt(hd);
    const vt = scratch, p = scratch + hd * T * 4, vtF = vt >>> 2, pF = p >>> 2, vF = v >>> 2;
    for (let task = lo; task < hi; task++) {
      const s = (task / nKv) | 0, g = task % nKv, r0 = s * T;
      for (let t = 0; t < T; t++) {
        const src = vF + (r0 + t) * kvDim + g * hd;
        for (let d = 0; d < hd; d++) f[vtF + d * T + t] = f[src + d];
      }
      const kBase = k + (r0 * kvDim + g * hd) * 4;
      for (let i = 0; i < rep; i++) {
        const h = g * rep + i;
        for (let t0 = 0; t0 < T; t0 += BT) {
          const t1 = Math.min(T, t0 + BT), rows = t1 - t0;
          const qRow = q + ((r0 + t0) * qDim + h * hd) * 4;
          mm(qRow, qDim * 4, kBase, kvDim * 4, p, T * 4, 0, rows, 0, t1, hd);
          for (let r = 0; r < rows; r++) {
            const t = t0 + r, o = pF + r * T, jlo = Math.max(0, t - W + 1), jhi = t + 1;
            let max = -Infinity;
            for (let j = jlo; j < jhi; j++) if (f[o + j] > max) max = f[o + j];
            let sum = 0;
            for (let j = jlo; j < jhi; j++) { const e = Math.exp((f[o + j] - max) * scale); f[o + j] = e; sum += e; }
            const inv = 1 / sum;
            for (let j = 0; j < jlo; j++) f[o + j] = 0;
            for (let j = jlo; j < jhi; j++) f[o + j] *= inv;
            for (let j = jhi; j < t1; j++) f[o + j] = 0;
          }
          mm(p, T * 4, vt, T * 4, out + ((r0 + t0) * qDim + h * hd) * 4, qDim * 4, 0, rows, 0, hd, t1);
        }
      }
    }
  }
  function swiglu(a, lo, hi) {
    const f = new Float32Array(memory.buffer);
    const gate = a[0] >>> 2, up = a[1] >>> 2;
    for (let i = lo; i < hi; i++) {
      const x = f[gate + i];
      f[gate + i] = (x / (1 + Math.exp(-x))) * f[up + i];
    }
  }
  function transpose(a, lo, hi) {
    const f = new Float32Array(memory.buffer);
    const src = a[0] >>> 2, M = a[1], K = a[2], dst = a[3] >>> 2;
    for (let k = lo; k < hi; k++) {
      const o = dst + k * M;
      for (let m = 0; m < M; m++) f[o + m] = f[src + m * K + k];
    }
  }
  function gramBand(a, lo, hi, thread) {
    const f = new Float32Array(memory.buffer), f64 = new Float64Array(memory.buffer);
    const xt = a[0], M = a[1], K = a[2], acc = a[3] >>> 3, band = a[4], blk = a[5] + thread * a[6];
    const nBands = Math.ceil(K / band), blkF = blk >>> 2;
    for (let t = lo; t < hi; t++) {
      const b0 = (nBands - 1 - t) * band, b1 = Math.min(K, b0 + band);
      mm(xt + b0 * M * 4, M * 4, xt, M * 4, blk, b1 * 4, 0, b1 - b0, 0, b1, M);
      for (let i = b0; i < b1; i++) {
        const o = blkF + (i - b0) * b1, r = acc + i * K;
        for (let j = 0; j <= i; j++) f64[r + j] += f[o + j];
      }
    }
  }
  function panel64(a, lo, hi) {
    const f = new Float64Array(memory.buffer);
    const A = a[0] >>> 3, n = a[1], j0 = a[2], j1 = a[3];
    for (let i = j1 + lo; i < j1 + hi; i++) {
      const ri = A + i * n;
      for (let j = j0; j < j1; j++) {
        const rj = A + j * n;
        let s = f[ri + j];
        for (let c = j0; c < j; c++) s -= f[ri + c] * f[rj + c];
        f[ri + j] = s / f[rj + j];
      }
    }
  }
  function syrk64(a, lo, hi) {
    const A = a[0], n = a[1], j0 = a[2], j1 = a[3], nb = a[4];
    const nBlocks = Math.ceil((n - j1) / nb);
    for (let t = lo; t < hi; t++) {
      const r0 = j1 + (nBlocks - 1 - t) * nb, r1 = Math.min(n, r0 + nb);
      mm64(A + (r0 * n + j0) * 8, n * 8, A + (j1 * n + j0) * 8, n * 8, A + (r0 * n + j1) * 8, n * 8, 0, r1 - r0, 0, r1 - j1, j1 - j0);
    }
  }
  function trinv64(a, lo, hi, thread) {
    const f = new Float64Array(memory.buffer);
    const Lp = a[0], XTp = a[1], n = a[2], nb = a[3], tmpP = a[4] + thread * a[5];
    const L = Lp >>> 3, XT = XTp >>> 3, tmp = tmpP >>> 3;
    for (let t = lo; t < hi; t++) {
      const j0 = t * nb, j1 = Math.min(n, j0 + nb), w = j1 - j0;
      for (let c = j0; c < j1; c++) {
        const xr = XT + c * n;
        for (let i = c; i < j1; i++) {
          const li = L + i * n;
          let s = i === c ? 1 : 0;
          for (let q = c; q < i; q++) s -= f[li + q] * f[xr + q];
          f[xr + i] = s / f[li + i];
        }
      }
      for (let i0 = j1; i0 < n; i0 += nb) {
        const i1 = Math.min(n, i0 + nb), rows = i1 - i0;
        for (let q = 0; q < rows * w; q++) f[tmp + q] = 0;
        mm64(Lp + (i0 * n + j0) * 8, n * 8, XTp + (j0 * n + j0) * 8, n * 8, tmpP, w * 8, 0, rows, 0, w, i0 - j0);
        for (let c = j0; c < j1; c++) {
          const xr = XT + c * n;
          for (let i = i0; i < i1; i++) {
            const li = L + i * n;
            let s = f[tmp + (i - i0) * w + (c - j0)];
            for (let q = i0; q < i; q++) s -= f[li + q] * f[xr + q];
            f[xr + i] = s / f[li + i];
          }
        }
      }
    }
  }
  function rint(v) {
    const r = Math.round(v);
    return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  function gptqColumns(a, lo, hi) {
    const buf = memory.buffer, f64 = new Float64Array(buf), f32 = new Float32Array(buf), i32 = new Int32Array(buf), i8 = new Int8Array(buf);
    const P = a[0] >>> 2, i1 = a[1], i2 = a[2], c0 = a[3], c1 = a[4];
    const wp = i32[P] >>> 3, u = i32[P + 1] >>> 3, err = i32[P + 2] >>> 3, sc = i32[P + 3] >>> 2, perm = i32[P + 4] >>> 2;
    const qp = i32[P + 5] >>> 0, loss = i32[P + 6] >>> 3, K = i32[P + 7], G = i32[P + 8], groups = i32[P + 9], B = i32[P + 10];
    for (let n = lo; n < hi; n++) {
      const row = wp + n * K;
      let l = 0;
      for (let i = c0; i < c1; i++) {
        const g = (i32[perm + i] / G) | 0, ri = u + (i - i1) * B - i1, d = f64[ri + i];
        const x = f64[row + i], s = f32[sc + n * groups + g];
        let q = s === 0 ? 0 : rint(Math.fround(Math.fround(x) / s));
        q = q < -7 ? -7 : q > 7 ? 7 : q;
        i8[qp + n * K + i] = q;
        const e = (x - q * s) / d;
        l += (e * e) / 2;
        f64[err + n * B + (i - i1)] = e;
        if (e === 0) continue;
        for (let j = i + 1; j < i2; j++) f64[row + j] -= e * f64[ri + j];
      }
      f64[loss + n] += l;
    }
  }
  return [null, attention, swiglu, transpose, gramBand, panel64, syrk64, trinv64, gptqColumns];
})`;
