// The continuous-batching scheduler (src/serve/batcher.ts) against a fake model whose next id is a
// hash of every token in the sequence so far (so a wrong position, a stale cache slot or a chunk
// fed twice changes the output): for random request sets, slot counts and step budgets, every
// request's ids and finish reason equal running it alone, and every step keeps the invariants
// (at most maxRows rows, distinct slots, each chunk at its sequence's next position, a slot never
// shared by two live requests, every request admitted and finished once); add() and cancel() while
// it runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ContinuousBatcher, type BatchRequest, type FinishReason } from '../../src/serve/batcher.ts';

const V = 13;
const nextId = (seq: readonly number[]) => seq.reduce((h, t, i) => (h * 31 + t * (i + 7)) % 1_000_003, seq.length) % V;

/** The request alone: feed the prompt, then sampled ids, until stop / maxNew / the context. */
function alone(r: BatchRequest, maxSeq: number): { ids: number[]; reason: FinishReason } {
  const seq = [...r.prompt], ids: number[] = [], limit = Math.min(maxSeq, r.prompt.length + r.maxNew);
  for (;;) {
    const id = nextId(seq);
    if (r.stopIds?.has(id)) return { ids, reason: 'stop' };
    ids.push(id);
    if (ids.length >= r.maxNew) return { ids, reason: 'length' };
    if (seq.length >= limit) return { ids, reason: 'context' };
    seq.push(id);
  }
}

function runBatched(requests: BatchRequest[], slots: number, maxRows: number, maxSeq: number) {
  const b = new ContinuousBatcher(requests, { slots, maxRows, maxSeq });
  const cache: number[][] = Array.from({ length: slots }, () => []);  // what each slot's KV cache holds
  const owner: (number | undefined)[] = new Array(slots).fill(undefined);
  const ids: number[][] = requests.map(() => []), reasons: (FinishReason | undefined)[] = requests.map(() => undefined);
  const admitted = new Set<number>();
  let steps = 0;
  while (!b.done) {
    const chunks = b.plan();
    assert.ok(chunks.length > 0, 'a step with work left plans something');
    assert.ok(chunks.reduce((n, c) => n + c.tokens.length, 0) <= maxRows, 'at most maxRows rows');
    assert.equal(new Set(chunks.map((c) => c.slot)).size, chunks.length, 'distinct slots');
    const sampled = chunks.map((c) => {
      if (c.pos === 0) {
        assert.ok(owner[c.slot] === undefined || owner[c.slot] === c.request, `slot ${c.slot} still held by request ${owner[c.slot]}`);
        assert.ok(!admitted.has(c.request), `request ${c.request} admitted twice`);
        admitted.add(c.request);
        owner[c.slot] = c.request;
        cache[c.slot] = [];
      }
      assert.equal(owner[c.slot], c.request, 'the chunk runs in its request\'s slot');
      assert.equal(c.pos, cache[c.slot]!.length, 'the chunk continues its sequence');
      cache[c.slot]!.push(...c.tokens);
      assert.ok(cache[c.slot]!.length <= maxSeq, 'within the context');
      return c.sample ? nextId(cache[c.slot]!) : undefined;
    });
    const out = b.commit(sampled);
    for (const t of out.tokens) ids[t.request]!.push(t.id);
    for (const f of out.finished) {
      assert.equal(reasons[f.request], undefined, `request ${f.request} finished twice`);
      reasons[f.request] = f.reason;
      owner[chunks.find((c) => c.request === f.request)!.slot] = undefined;
    }
    assert.ok(++steps < 10_000, 'terminates');
  }
  return { ids, reasons, steps };
}

const requestArb = fc.record({
  prompt: fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: 1, maxLength: 12 }),
  maxNew: fc.integer({ min: 1, max: 7 }),
  stop: fc.option(fc.integer({ min: 0, max: V - 1 }), { nil: undefined }),
});

test('continuous batching = each request alone, for any request set, slots and step budget; invariants hold every step', () => {
  fc.assert(fc.property(
    fc.array(requestArb, { minLength: 1, maxLength: 9 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 12, max: 20 }),
    (specs, slots, extraRows, maxSeq) => {
      const requests: BatchRequest[] = specs.map((s) => ({ prompt: s.prompt, maxNew: s.maxNew, ...(s.stop !== undefined ? { stopIds: new Set([s.stop]) } : {}) }));
      const got = runBatched(requests, slots, slots + extraRows, maxSeq);
      requests.forEach((r, i) => {
        const want = alone(r, maxSeq);
        assert.deepEqual(got.ids[i], want.ids, `request ${i} ids`);
        assert.equal(got.reasons[i], want.reason, `request ${i} reason`);
      });
    }), { numRuns: 300, seed: 42 });
});

test('the scheduler decodes every cached sequence each step and fills the rest with prompt chunks, first come first served', () => {
  const long = Array.from({ length: 10 }, (_, i) => i % V);
  const b = new ContinuousBatcher([{ prompt: long, maxNew: 3 }, { prompt: [1, 2], maxNew: 3 }, { prompt: [3], maxNew: 1 }], { slots: 2, maxRows: 4, maxSeq: 32 });
  const s1 = b.plan();  // requests 0 and 1 admitted; 4 rows of request 0's prompt
  assert.deepEqual(s1.map((c) => [c.request, c.pos, c.tokens.length, c.sample]), [[0, 0, 4, false]]);
  b.commit([undefined]);
  const s2 = b.plan();
  assert.deepEqual(s2.map((c) => [c.request, c.pos, c.tokens.length, c.sample]), [[0, 4, 4, false]]);
  b.commit([undefined]);
  const s3 = b.plan();  // request 0's last 2 prompt tokens, then request 1's whole prompt
  assert.deepEqual(s3.map((c) => [c.request, c.pos, c.tokens.length, c.sample]), [[0, 8, 2, true], [1, 0, 2, true]]);
  b.commit([5, 6]);
  const s4 = b.plan();  // both decode
  assert.deepEqual(s4.map((c) => [c.request, c.pos, c.tokens]), [[0, 10, [5]], [1, 2, [6]]]);
  const o4 = b.commit([7, 8]);
  assert.deepEqual(o4.tokens, [{ request: 0, id: 7 }, { request: 1, id: 8 }]);
  const s5 = b.plan();
  const o5 = b.commit(s5.map(() => 9));  // both reach maxNew = 3
  assert.deepEqual(o5.finished.map((f) => [f.request, f.reason]), [[0, 'length'], [1, 'length']]);
  const s6 = b.plan();  // request 2 takes slot 0
  assert.deepEqual(s6.map((c) => [c.request, c.slot, c.pos]), [[2, 0, 0]]);
  assert.deepEqual(b.commit([4]).finished, [{ request: 2, reason: 'length' }]);
  assert.ok(b.done);
});

test('bad requests and limits are one-line errors', () => {
  const limits = { slots: 2, maxRows: 4, maxSeq: 8 };
  assert.throws(() => new ContinuousBatcher([{ prompt: [], maxNew: 1 }], limits), /prompt 0 is empty/);
  assert.throws(() => new ContinuousBatcher([{ prompt: [1, 2, 3, 4, 5, 6, 7, 8, 9], maxNew: 1 }], limits), /prompt 0 of 9 tokens exceeds the context of 8/);
  assert.throws(() => new ContinuousBatcher([{ prompt: [1], maxNew: 0 }], limits), /maxNew must be a positive integer/);
  assert.throws(() => new ContinuousBatcher([{ prompt: [1], maxNew: 1 }], { ...limits, maxRows: 1 }), /1 rows cannot decode 2 sequences/);
  const b = new ContinuousBatcher([{ prompt: [1], maxNew: 1 }], limits);
  assert.throws(() => b.commit([]), /commit\(\) without plan\(\)/);
  b.plan();
  assert.throws(() => b.plan(), /plan\(\) twice/);
  assert.throws(() => b.commit([undefined]), /chunk 0 was sampled but got no id/);
});

test('add() queues requests while the batch runs; cancel() drops a queued one or frees a running one\'s slot for the next step', () => {
  const b = new ContinuousBatcher([], { slots: 1, maxRows: 8, maxSeq: 32 });
  assert.ok(b.done);
  const r0 = b.add({ prompt: [1, 2], maxNew: 50 }), r1 = b.add({ prompt: [3], maxNew: 2 }), r2 = b.add({ prompt: [4], maxNew: 2 });
  assert.deepEqual([r0, r1, r2], [0, 1, 2]);
  assert.deepEqual(b.plan().map((c) => c.request), [0]);
  b.commit([5]);
  assert.equal(b.cancel(r1), true, 'queued: dropped');
  assert.deepEqual(b.plan().map((c) => [c.request, c.pos]), [[0, 2]]);
  assert.throws(() => b.cancel(r0), /between plan\(\) and commit\(\)/);
  b.commit([6]);
  assert.equal(b.cancel(r0), true, 'running: its slot is free');
  assert.equal(b.active, 0);
  assert.deepEqual(b.plan().map((c) => [c.request, c.slot, c.pos]), [[2, 0, 0]], 'the next request takes the slot from position 0');
  b.commit([7]);
  assert.equal(b.cancel(r1), false, 'already gone');
  const last = b.plan();
  assert.deepEqual(b.commit(last.map(() => 8)).finished, [{ request: 2, reason: 'length' }]);
  assert.ok(b.done);
});
