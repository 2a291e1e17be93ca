// GPTQ's prepared Hessian straight from the Gram accumulator in the WebAssembly heap (hessian.ts
// takeGram), for GPTQ without --clip at large K: H = 2·G/rows is never formed; the blocked
// factorization (linalg.ts factorBlocked) reads each entry from G's lower triangle, scaled, dead-fixed
// and dampened exactly as prepareHessian (gptq.ts) does to H, so U, the permutation and the dead inputs
// are prepareHessian's bit for bit; G is given back once read and U is written into the heap. At most
// two K×K float64 arrays exist at once (970 MB each at K = 11008), none of them in JavaScript.
import { fail } from '../core/errors.ts';
import { heapFree } from '../core/matmul.ts';
import { memTrace } from '../core/mem-trace.ts';
import { heapF32 } from '../core/wasm-heap.ts';
import { GPTQ_DEFAULTS, prepareHessian, type PreparedHessian } from './gptq.ts';
import { hessianFromLower } from './hessian-f32.ts';
import { BLOCKED_MIN, factorBlocked } from './linalg.ts';

/**
 * prepareHessian of H = 2·G/rows (hessian.ts) from the Gram matrix's lower triangle `g`, a heap array
 * that is given back here (heapFree) once read, without forming H (the factorization reads each
 * entry from g, scaled, fixed and dampened exactly as prepareHessian does to H: the same U, perm and
 * dead, bit for bit). Large K: U lives in the heap (release it with releasePrepared); no `h`, so no
 * --clip. The K×K float64 arrays alive at once: two (970 MB each at K = 11008), all in the heap.
 */
export function prepareHessianFromGram(g: Float64Array, rows: number, K: number, opts: { percdamp?: number; actOrder?: boolean; name?: string } = {}): PreparedHessian {
  const name = opts.name ?? 'gptq';
  let given = false;
  const giveBack = () => { if (!given) { given = true; heapFree(g); } };
  try {
    if (g.length !== K * K) fail(name, `Gram matrix has ${g.length} values, expected ${K}x${K}`);
    if (rows === 0) fail('calibration', 'no calibration rows');
    for (let k = 0; k < K; k++) if (!Number.isFinite(g[k * K + k]!)) fail('calibration', `non-finite activations in input channel ${k}`);
    const f = 2 / rows;
    if (K < BLOCKED_MIN) { // small: H formed as InputStats.hessian() does
      const h = hessianFromLower(g, K, f, new Float64Array(K * K));
      giveBack();
      return prepareHessian(h, K, { ...opts, consume: true, keepHessian: false });
    }
    const percdamp = opts.percdamp ?? GPTQ_DEFAULTS.percdamp;
    if (!(percdamp >= 0 && percdamp < 1)) fail(name, `percdamp ${percdamp} outside [0, 1)`);
    const d = new Float64Array(K), dead = new Uint8Array(K);
    for (let k = 0; k < K; k++) {
      d[k] = g[k * K + k]! * f;
      if (d[k] === 0) { dead[k] = 1; d[k] = 1; }
    }
    const perm = opts.actOrder ? diagonalOrder(d) : Int32Array.from({ length: K }, (_, i) => i);
    let mean = 0;
    for (let i = 0; i < K; i++) mean += d[i]!;
    const damp = (percdamp * mean) / K;
    for (let i = 0; i < K; i++) d[i]! += damp;
    memTrace(`${name} hessian (from the Gram matrix)`);
    const u = factorBlocked(K, name, (a) => {
      // a[i, j] = H[p(K−1−i), p(K−1−j)], H[r, c] = G[max, min]·f off the diagonal
      for (let i = 0; i < K; i++) {
        const r = perm[K - 1 - i]!, dst = i * K;
        for (let j = 0; j < i; j++) { const c = perm[K - 1 - j]!; a[dst + j] = (r > c ? g[r * K + c]! : g[c * K + r]!) * f; }
        a[dst + i] = d[r]!;
      }
      giveBack();
    }, () => { const blk = heapF32(2 * K * K); return new Float64Array(blk.buffer, blk.byteOffset, K * K); });
    return { K, perm, dead, u };
  } finally {
    giveBack();
  }
}

/** Gives back a prepared Hessian's heap parts (U from prepareHessianFromGram); the caller drops it after. */
export function releasePrepared(ph: PreparedHessian): void {
  heapFree(ph.u);
}

/** The act-order permutation from the (fixed) diagonal: actOrderPermutation's order. */
function diagonalOrder(d: Float64Array): Int32Array {
  const idx = Array.from({ length: d.length }, (_, i) => i);
  idx.sort((a, b) => d[b]! - d[a]! || a - b);
  return Int32Array.from(idx);
}
