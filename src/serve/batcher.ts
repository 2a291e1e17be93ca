// Continuous batching: how many generation requests share a fixed number of sequence slots and a
// per-step token budget, whatever backend runs the steps (src/serve/generate-continuous.ts). Each
// step, every sequence whose prompt is in the cache decodes one token, and what is left of the
// budget prefills waiting prompts in chunks (a long prompt spans steps: chunked prefill); a
// sequence that ends (a stop id, its token limit or its context) gives its slot to the next
// request at once. Pure bookkeeping: no model, no device, no clock.
import { fail } from '../core/errors.ts';

export interface BatchRequest {
  /** Token ids, non-empty (start from BOS). */
  prompt: readonly number[];
  /** New tokens at most. */
  maxNew: number;
  /** Ids that end the sequence without being emitted. */
  stopIds?: ReadonlySet<number>;
}

/** One sequence's part of a step: `tokens` at positions pos .. in cache slot `slot`. */
export interface PlannedChunk {
  request: number;
  slot: number;
  pos: number;
  tokens: readonly number[];
  /** Whether this chunk's last row is sampled (a decode row, or the prompt's last chunk). */
  sample: boolean;
}

export type FinishReason = 'stop' | 'length' | 'context';

export interface StepOutcome {
  /** Tokens emitted this step, in chunk order. */
  tokens: { request: number; id: number }[];
  /** Requests that ended this step (their slots are free for the next plan). */
  finished: { request: number; reason: FinishReason }[];
}

interface Running {
  request: number;
  /** Positions in the cache: a prefix of the prompt, then the prompt and the fed new ids. */
  fed: number;
  /** The last sampled id, fed by the next decode row. */
  next?: number;
  emitted: number;
  /** Positions this sequence may use: min(context, prompt + maxNew). */
  limit: number;
}

export interface BatcherLimits {
  /** Sequence slots (the largest batch). */
  slots: number;
  /** Rows (tokens) per step, at least `slots` (every running sequence decodes each step). */
  maxRows: number;
  /** Positions per slot. */
  maxSeq: number;
}

export class ContinuousBatcher {
  private readonly requests: BatchRequest[] = [];
  /** Requests not yet admitted, in arrival order. */
  private readonly waiting: number[] = [];
  private readonly slots: (Running | undefined)[];
  /** Slots in the order their requests were admitted (prefill goes first come, first served). */
  private admitted: number[] = [];
  private last: PlannedChunk[] | undefined;

  /** `requests` are queued in order (more can come with add()). */
  constructor(requests: readonly BatchRequest[], private readonly limits: BatcherLimits) {
    const { slots, maxRows } = limits;
    if (!(Number.isInteger(slots) && slots >= 1)) fail('batch', `slots must be a positive integer (got ${slots})`);
    if (!(Number.isInteger(maxRows) && maxRows >= slots)) fail('batch', `a step of ${maxRows} rows cannot decode ${slots} sequences at once`);
    this.slots = new Array(slots).fill(undefined);
    for (const r of requests) this.add(r);
  }

  /** Queue a request; returns its index (requests are numbered in the order they come). */
  add(r: BatchRequest): number {
    const i = this.requests.length;
    if (r.prompt.length === 0) fail('batch', `prompt ${i} is empty: start it from BOS`);
    if (r.prompt.length > this.limits.maxSeq) fail('batch', `prompt ${i} of ${r.prompt.length} tokens exceeds the context of ${this.limits.maxSeq}`);
    if (!(Number.isInteger(r.maxNew) && r.maxNew >= 1)) fail('batch', `request ${i}: maxNew must be a positive integer (got ${r.maxNew})`);
    this.requests.push(r);
    this.waiting.push(i);
    return i;
  }

  /**
   * Drop request `i` (a client went away): out of the queue, or out of its slot (free from the next
   * plan on). Not between plan() and commit(). Returns whether it was still queued or running.
   */
  cancel(i: number): boolean {
    if (this.last) fail('batch', 'cancel() between plan() and commit()');
    const w = this.waiting.indexOf(i);
    if (w >= 0) {
      this.waiting.splice(w, 1);
      return true;
    }
    const slot = this.slots.findIndex((s) => s?.request === i);
    if (slot < 0) return false;
    this.slots[slot] = undefined;
    this.admitted = this.admitted.filter((x) => x !== slot);
    return true;
  }

  /** Whether every request so far has ended. */
  get done(): boolean {
    return this.waiting.length === 0 && this.slots.every((s) => s === undefined);
  }

  /** Sequences in the slots now. */
  get active(): number {
    return this.slots.filter((s) => s !== undefined).length;
  }

  /** The next step: waiting requests admitted into free slots, one decode row per sequence whose
   *  prompt is cached, then prompt chunks in admission order until the budget is spent. */
  plan(): PlannedChunk[] {
    if (this.last) fail('batch', 'plan() twice without commit()');
    this.slots.forEach((s, slot) => {
      if (s !== undefined || this.waiting.length === 0) return;
      const request = this.waiting.shift()!, r = this.requests[request]!;
      this.slots[slot] = { request, fed: 0, emitted: 0, limit: Math.min(this.limits.maxSeq, r.prompt.length + r.maxNew) };
      this.admitted.push(slot);
    });
    const chunks: PlannedChunk[] = [];
    let budget = this.limits.maxRows;
    this.slots.forEach((s, slot) => {
      if (s?.next === undefined) return;
      chunks.push({ request: s.request, slot, pos: s.fed, tokens: [s.next], sample: true });
      budget--;
    });
    for (const slot of this.admitted) {
      const s = this.slots[slot]!, prompt = this.requests[s.request]!.prompt;
      if (budget === 0) break;
      if (s.fed >= prompt.length) continue;
      const take = Math.min(prompt.length - s.fed, budget);
      chunks.push({ request: s.request, slot, pos: s.fed, tokens: prompt.slice(s.fed, s.fed + take), sample: s.fed + take === prompt.length });
      budget -= take;
    }
    this.last = chunks;
    return chunks;
  }

  /** The sampled ids of the planned step: ids[i] for chunk i (only those with `sample` are read). */
  commit(ids: readonly (number | undefined)[]): StepOutcome {
    const chunks = this.last ?? fail('batch', 'commit() without plan()');
    if (ids.length !== chunks.length) fail('batch', `${chunks.length} chunks planned, ${ids.length} ids given`);
    this.last = undefined;
    const out: StepOutcome = { tokens: [], finished: [] };
    chunks.forEach((c, i) => {
      const s = this.slots[c.slot]!;
      s.fed += c.tokens.length;
      s.next = undefined;
      if (!c.sample) return;
      const id = ids[i];
      if (id === undefined || !Number.isInteger(id)) fail('batch', `chunk ${i} was sampled but got no id`);
      const r = this.requests[c.request]!;
      const end = (reason: FinishReason) => {
        out.finished.push({ request: c.request, reason });
        this.slots[c.slot] = undefined;
        this.admitted = this.admitted.filter((x) => x !== c.slot);
      };
      if (r.stopIds?.has(id)) return end('stop');
      out.tokens.push({ request: c.request, id });
      s.emitted++;
      if (s.emitted >= r.maxNew) return end('length');
      if (s.fed >= s.limit) return end('context');  // the next decode row would not fit
      s.next = id;
    });
    return out;
  }
}
