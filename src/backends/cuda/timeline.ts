// The timeline of one decode step: a CUDA graph of the step with an event recorded before every op
// (event-record nodes), replayed; the time between consecutive events, summed per op over the
// layers, says which kernels take the step's time (launch gaps included, as in the real graph).
import type { DeviceBuffer, GpuEvent } from '../../gpu/runtime.ts';
import type { StepOps } from '../../model/forward.ts';
import type { DeviceLinear } from './device-linear.ts';
import { GREEDY, type Act, type CudaEngine } from './engine.ts';

type Ops = StepOps<Act, DeviceLinear, DeviceBuffer>;

/** Calls `mark(op)` before every op of `inner` (linears are named by their role). */
function marked(inner: Ops, mark: (name: string) => void): Ops {
  return {
    embed: () => { mark('embed'); return inner.embed(); },
    rmsnorm: (x, w, consumer) => { mark('rmsnorm'); return inner.rmsnorm(x, w, consumer); },
    linear: (x, w) => { mark(`gemm ${w.role}`); return inner.linear(x, w); },
    linearAdd: (x, w, r) => { mark(`gemm ${w.role} (+residual)`); inner.linearAdd(x, w, r); },
    attention: (qkv, l, consumer) => { mark('rope + attention'); return inner.attention(qkv, l, consumer); },
    swiglu: (gu, consumer) => { mark('swiglu'); return inner.swiglu(gu, consumer); },
    logits: (x, n, h) => { mark('final norm + lm head'); inner.logits(x, n, h); },
  };
}

export interface TimelineRow {
  op: string;
  /** µs per decode step, summed over the op's launches (all layers) */
  us: number;
  launches: number;
}

/** Per-op time of one decode step of batch B (after beginDecode; the decode state advances by `replays` steps). */
export function decodeTimeline(engine: CudaEngine, B: number, replays = 5): { rows: TimelineRow[]; stepUs: number } {
  engine.prepareDecode(B);
  const gpu = engine.gpu, events: GpuEvent[] = [], names: string[] = [];
  const mark = (name: string) => {
    const e = gpu.event();
    e.record(engine.stream);
    events.push(e);
    names.push(name);
  };
  const graph = gpu.capture(engine.stream, () => engine.decodeLaunches(B, GREEDY, (ops) => marked(ops, mark), mark));
  const totals = new Map<string, { us: number; launches: number }>();
  let step = 0;
  try {
    for (let r = 0; r < replays; r++) {
      graph.launch(engine.stream);
      engine.stream.sync();
      if (r === 0) continue;  // the first replay warms caches
      for (let i = 0; i + 1 < events.length; i++) {
        const us = events[i + 1]!.elapsedMsSince(events[i]!) * 1000;
        const t = totals.get(names[i]!) ?? { us: 0, launches: 0 };
        t.us += us / (replays - 1);
        t.launches += 1 / (replays - 1);
        totals.set(names[i]!, t);
      }
      step += events[events.length - 1]!.elapsedMsSince(events[0]!) * 1000 / (replays - 1);
    }
  } finally {
    graph.destroy();
    for (const e of events) e.destroy();
  }
  const rows = [...totals].map(([op, t]) => ({ op, us: Number(t.us.toFixed(1)), launches: Math.round(t.launches) })).sort((a, b) => b.us - a.us);
  return { rows, stepUs: Number(step.toFixed(1)) };
}
