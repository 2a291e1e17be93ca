// The Hessian H = f·G (f = 2/rows) read from the Gram matrix's lower triangle G (float64 [K, K]
// row-major, as InputStats sums it; the upper triangle is never read): the full symmetric matrix in
// float64 (GPTQ, InputStats.hessian) or fp32 (AWQ's scale search, its fp32 matmuls), into a given
// array; in fp32 also written over G's own bytes (no second K×K array: at K = 11008 its 485 MB fit in
// G's 970 MB); and the diagonal [G, G] blocks of the group clip search. Every fp32 entry is
// fp32(G[max(i, j), min(i, j)]·f), the value Float32Array.from(InputStats.hessian()) holds, so the
// searches see the same matrix bit for bit.

/** H as a full symmetric [K, K] matrix, into `out` (float64: may be `lower` itself: each (i, j ≤ i) is
 *  read before (j, i), an upper entry, is written). */
export function hessianFromLower<T extends Float32Array | Float64Array>(lower: Float64Array, K: number, f: number, out: T): T {
  for (let i = 0; i < K; i++)
    for (let j = 0; j <= i; j++) { const v = lower[i * K + j]! * f; out[i * K + j] = v; out[j * K + i] = v; }
  return out;
}

/**
 * H as a full symmetric fp32 [K, K] matrix written over the bytes of `lower` (a view of its first
 * half is returned; `lower` is then garbage). Row i of H (bytes [4iK, 4(i+1)K)) reads G[i, 0..i] (bytes
 * from 8iK) and G[i+1.., i] (from 8(i+1)K): for i ≥ 1 all at or above 8iK ≥ 4(i+1)K, past everything
 * written so far; for i = 0, G[0, 0] is read before H[0, 0] is written over it.
 */
export function hessianF32InPlace(lower: Float64Array, K: number, f: number): Float32Array {
  const h = new Float32Array(lower.buffer, lower.byteOffset, K * K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j <= i; j++) h[i * K + j] = lower[i * K + j]! * f;
    for (let j = i + 1; j < K; j++) h[i * K + j] = lower[j * K + i]! * f;
  }
  return h;
}

/** H's diagonal blocks [k0, k0+G)² for k0 = 0, G, 2G, ...: fp32 [K/G, G, G], each block row-major. */
export function hessianBlocksF32(lower: Float64Array, K: number, G: number, f: number): Float32Array {
  const out = new Float32Array(K * G);
  for (let k0 = 0; k0 < K; k0 += G)
    for (let i = 0; i < G; i++)
      for (let j = 0; j < G; j++) {
        const a = k0 + Math.max(i, j), b = k0 + Math.min(i, j);
        out[(k0 + i) * G + j] = lower[a * K + b]! * f;
      }
  return out;
}
