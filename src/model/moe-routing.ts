// Mixtral's routing rule, shared by the CPU engine (src/backends/cpu/ops.ts moeAdd) and the
// calibration pipeline (src/quant/calib-moe.ts), as transformers computes it: softmax over the
// experts' router logits, the K most probable (ties: the lower expert index), their probabilities
// renormalized to sum 1 (stored as fp32). moe_route.cu is the GPU's version (its twin checks it).

/** Per expert: the rows routed to it (ascending) and their weights. */
export interface ExpertRows {
  rows: number[];
  weights: number[];
}

/** Route `rows` rows of router logits [rows, E] (row r is row r0 + r of the step) into `into`
 *  (one entry per expert; rows are appended, so calls in row order keep them ascending). */
export function routeRows(logits: Float32Array, rows: number, E: number, K: number, r0: number, into: ExpertRows[]): void {
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * E, (r + 1) * E);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    const p = Array.from(row, (v) => Math.exp(v - max));
    const total = p.reduce((a, b) => a + b, 0);
    const top = p.map((v, e) => ({ e, v: v / total })).sort((a, b) => b.v - a.v || a.e - b.e).slice(0, K);
    const kept = top.reduce((a, t) => a + t.v, 0);
    for (const t of top) { into[t.e]!.rows.push(r0 + r); into[t.e]!.weights.push(Math.fround(t.v / kept)); }
  }
}

/** An empty routing for E experts. */
export const noRows = (E: number): ExpertRows[] => Array.from({ length: E }, () => ({ rows: [], weights: [] }));
