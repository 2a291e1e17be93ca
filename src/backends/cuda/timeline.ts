// The timeline of one decode step, by leave-one-out: the step's CUDA graph is timed whole, then
// once per op kind with that kind's launches left out (the results are garbage, the timing is
// not); the difference is what the kind costs inside the real graph, launch gaps and the overlap
// it loses included. What the kinds do not explain is the graph's fixed cost.
import type { Graph } from '../../gpu/runtime.ts';
import { GREEDY, STEP_OPS, type CudaEngine, type StepOpName } from './engine.ts';

export interface TimelineRow {
  op: StepOpName | 'rest';
  /** µs per decode step this op kind costs (step time − step time without it) */
  us: number;
}

function timeGraph(engine: CudaEngine, g: Graph, replays: number): number {
  const gpu = engine.gpu, a = gpu.event(), b = gpu.event();
  try {
    g.launch(engine.stream);  // warm-up
    a.record(engine.stream);
    for (let i = 0; i < replays; i++) g.launch(engine.stream);
    b.record(engine.stream);
    b.sync();
    return (b.elapsedMsSince(a) * 1000) / replays;
  } finally {
    a.destroy();
    b.destroy();
  }
}

/**
 * Per-op cost of one decode step of batch B (after beginDecode). The decode state is saved and
 * restored around each variant, so positions stay in range however many replays run.
 */
export function decodeTimeline(engine: CudaEngine, B: number, replays = 20): { rows: TimelineRow[]; stepUs: number } {
  engine.prepareDecode(B);
  const saved = engine.saveDecodeState(B);
  const measure = (skip?: ReadonlySet<StepOpName>) => {
    const g = engine.gpu.capture(engine.stream, () => engine.decodeLaunches(B, GREEDY, skip));
    try {
      engine.restoreDecodeState(saved);
      // a variant without 'sample' leaves positions alone; with it each replay advances them: stay in range
      return timeGraph(engine, g, replays);
    } finally {
      g.destroy();
      engine.restoreDecodeState(saved);
    }
  };
  const stepUs = measure();
  // only the kinds a decode step launches (decode fuses RoPE + KV append into attention)
  const kinds = STEP_OPS.filter((op) => engine.stepOps.has(op));
  const rows: TimelineRow[] = kinds.map((op) => ({ op, us: Number(Math.max(0, stepUs - measure(new Set([op]))).toFixed(1)) }));
  const explained = rows.reduce((n, r) => n + r.us, 0);
  rows.push({ op: 'rest', us: Number(Math.max(0, stepUs - explained).toFixed(1)) });
  rows.sort((a, b) => b.us - a.us);
  return { rows, stepUs: Number(stepUs.toFixed(1)) };
}
