// Folding per-input-channel scales (AWQ, SmoothQuant: the input becomes x·r) into the weights on
// either side of it, in place: the consumers' columns divided by r, or the producer's rows (what
// makes the input) multiplied by r. The norm fold is calibrate.ts's foldIntoNorm.

/** W [N, K]: column k divided by r_k (the consumer of an input that became x·r). */
export function divideColumns(w: Float32Array, N: number, K: number, r: Float32Array): void {
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k] = w[n * K + k]! / r[k]!;
}

/** down_proj's input scale s folded into the rows of what produces that input (up_proj [N, K], in
 *  place): its row n times r_n = 1/s_n; returns r (the input becomes x·r). */
export function foldIntoRows(up: Float32Array, N: number, K: number): (s: Float32Array) => Float32Array {
  return (s) => {
    const r = Float32Array.from(s, (v) => 1 / v);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) up[n * K + k] = up[n * K + k]! * r[n]!;
    return r;
  };
}
