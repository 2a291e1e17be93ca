// The Linear contract between the model engine and every weight representation (dense fp32,
// W4A16, W4A8 with float or integer scales, ...). The CPU engine only ever calls `forward`.

export interface Linear {
  /** K: length of each input row. */
  readonly inFeatures: number;
  /** N: length of each output row. */
  readonly outFeatures: number;
  /** y[M, N] = x[M, K] · Wᵀ (+ bias): x and y row-major fp32; `rows` is M. */
  forward(x: Float32Array, rows: number): Float32Array;
  /** Give heap memory back (linears that keep weights in the shared wasm heap); unusable afterwards. */
  dispose?(): void;
}
