// `intscale bench gptq`: GPTQ of one decoder layer on the GPU (src/gpu/gptq/solver.ts) at a
// shape-true architecture, from random calibration activations and weights made on the GPU (fp16,
// N(0,1) inputs, N(0, 0.02) weights: the timing depends on the shapes only). The layer's four input
// groups are those of the calibration pipeline: q/k/v share a Hessian, o has its own, gate/up share
// one, down has K = hidden. Per group and in total: seconds for the Hessian (XᵀX), the factor (U with
// H⁻¹ = UᵀU) and the column loop (all linears of the group, the results downloaded), each stage
// between device synchronizations.
import { archPreset } from '../model/arch-presets.ts';
import type { Gpu } from '../gpu/runtime.ts';
import { GpuGptq } from '../gpu/gptq/solver.ts';

export interface GptqBenchOptions { arch: string; tokens: number; group: number; actOrder: boolean; runs: number; seed?: number }

export interface GptqStageSeconds { hessian: number; factor: number; columns: number; total: number }
export interface GptqGroupTiming extends GptqStageSeconds { input: string; K: number; linears: { name: string; N: number }[] }
export interface GptqBenchRun extends GptqStageSeconds { groups: GptqGroupTiming[] }
export interface GptqBenchResults {
  device: string; date: string; commit: string;
  arch: string; tokens: number; group: number; actOrder: boolean;
  runs: GptqBenchRun[];
}

/** The layer's input groups: name, K and the linears (name, N) reading it. */
export function layerGroups(arch: string): { input: string; K: number; linears: { name: string; N: number }[] }[] {
  const c = archPreset(arch);
  const q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
  return [
    { input: 'attn (q/k/v)', K: c.dim, linears: [{ name: 'q_proj', N: q }, { name: 'k_proj', N: kv }, { name: 'v_proj', N: kv }] },
    { input: 'o', K: q, linears: [{ name: 'o_proj', N: c.dim }] },
    { input: 'mlp (gate/up)', K: c.dim, linears: [{ name: 'gate_proj', N: c.hiddenDim }, { name: 'up_proj', N: c.hiddenDim }] },
    { input: 'down', K: c.hiddenDim, linears: [{ name: 'down_proj', N: c.dim }] },
  ];
}

export function runGptqBench(gpu: Gpu, o: GptqBenchOptions, onStage?: (line: string) => void): GptqBenchResults {
  const solver = new GpuGptq(gpu);
  // weights.cu random_f16(u16* out, u64 n, u64 seed, float mean, float std), grid ceil(n/256) × 256
  const random = gpu.compile('src/gpu/kernels/weights.cu').fn('random_f16');
  const fill = (buf: { ptr: bigint }, n: number, seed: number, std: number) =>
    random.launch({ grid: Math.ceil(n / 256), block: 256 }, [{ ptr: buf.ptr }, { u64: n }, { u64: BigInt(seed) }, { f32: 0 }, { f32: std }]);
  const groups = layerGroups(o.arch);
  const runs: GptqBenchRun[] = [];
  let seed = o.seed ?? 1;
  try {
    for (let r = 0; r < o.runs; r++) {
      const timings: GptqGroupTiming[] = [];
      for (const g of groups) {
        const x = gpu.alloc(o.tokens * g.K * 2), gram = gpu.alloc(g.K * g.K * 4);
        const maxN = Math.max(...g.linears.map((l) => l.N)), w = gpu.alloc(maxN * g.K * 2);
        try {
          fill(x, o.tokens * g.K, seed++, 1);
          gpu.sync();
          let t = performance.now();
          const lap = () => { gpu.sync(); const now = performance.now(), s = (now - t) / 1000; t = now; return s; };
          solver.gramInto(gram, x, o.tokens, g.K, 'f16', false);
          const hessian = lap();
          const f = solver.factor(gram, o.tokens, g.K, { actOrder: o.actOrder, name: g.input });
          const factor = lap();
          let columns = 0;
          try {
            for (const l of g.linears) {
              fill(w, l.N * g.K, seed++, 0.02);
              gpu.sync();
              t = performance.now();
              solver.quantize({ ptr: w.ptr, f16: true }, l.N, f, { group: o.group, actOrder: o.actOrder, name: l.name });
              columns += lap();
            }
          } finally {
            f.free();
          }
          const timing = { input: g.input, K: g.K, linears: g.linears, hessian, factor, columns, total: hessian + factor + columns };
          timings.push(timing);
          onStage?.(`run ${r + 1}/${o.runs} ${g.input}: hessian ${hessian.toFixed(3)} s, factor ${factor.toFixed(3)} s, columns ${columns.toFixed(3)} s`);
        } finally {
          for (const b of [x, gram, w]) b.free();
        }
      }
      const sum = (k: keyof GptqStageSeconds) => timings.reduce((a, g) => a + g[k], 0);
      runs.push({ hessian: sum('hessian'), factor: sum('factor'), columns: sum('columns'), total: sum('total'), groups: timings });
    }
  } finally {
    solver.dispose();
  }
  return {
    device: gpu.name, date: new Date().toISOString(), commit: process.env['INTSCALE_COMMIT'] ?? 'unknown',
    arch: o.arch, tokens: o.tokens, group: o.group, actOrder: o.actOrder, runs,
  };
}

export function formatGptqBench(r: GptqBenchResults): string {
  const lines = [`GPTQ of one ${r.arch} decoder layer on ${r.device}: ${r.tokens} calibration tokens, group ${r.group}, ${r.actOrder ? 'act-order' : 'natural order'}`,
    'run  input            K      hessian s  factor s  columns s  total s'];
  r.runs.forEach((run, i) => {
    for (const g of run.groups)
      lines.push(`${String(i + 1).padEnd(4)} ${g.input.padEnd(16)} ${String(g.K).padEnd(6)} ${g.hessian.toFixed(3).padStart(9)}  ${g.factor.toFixed(3).padStart(8)}  ${g.columns.toFixed(3).padStart(9)}  ${g.total.toFixed(3).padStart(7)}`);
    lines.push(`${String(i + 1).padEnd(4)} ${'layer'.padEnd(16)} ${''.padEnd(6)} ${run.hessian.toFixed(3).padStart(9)}  ${run.factor.toFixed(3).padStart(8)}  ${run.columns.toFixed(3).padStart(9)}  ${run.total.toFixed(3).padStart(7)}`);
  });
  return lines.join('\n');
}
