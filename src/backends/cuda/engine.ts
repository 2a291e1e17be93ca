// The CUDA engine: a DeviceModel, its KV cache, the activation workspaces and the step metadata
// in device memory, and the CUDA backend's StepOps (src/model/forward.ts) that issue every kernel
// of a step on the engine's one stream. Prefill runs steps eagerly (any mix of sequences and
// lengths, chunked to the workspace); decode is one CUDA graph per batch size, captured once and
// replayed: positions, lengths and sampled ids stay in device buffers updated in place by the
// graph itself (sample.cu's advance_step), so only token ids ever cross to the host. A mixture of
// experts (Mixtral) runs each projection of a step of up to GROUPED_MAX_ROWS rows as one grouped GEMM
// that reads the routing's per-expert row counts on the device, so those decode steps are graphs
// too; larger steps (prefill, decode batches above 16) read the counts back and launch one GEMM
// per routed expert (eager).
import { fail } from '../../core/errors.ts';
import type { DeviceBuffer, Gpu, Graph, Stream } from '../../gpu/runtime.ts';
import { forwardStep, type ModelHandles, type MoeFeedForward, type StepOps } from '../../model/forward.ts';
import { ropeTables } from '../../model/rope.ts';
import { expertTable, GROUPED_MAX_ROWS } from '../../gpu/kernels/grouped-gemm.ts';
import { GemmRunner, inputFormat, type DeviceLinear } from './device-linear.ts';
import type { DeviceModel } from './device-model.ts';
import { ATTN_DECODE_MAX_SPLITS, ATTN_KEYS_PER_TILE, EngineKernels } from './kernels.ts';
import { KvCache } from './kv-cache.ts';
import { decodeAttentionSplits, fusedDecodeFits } from './decode-splits.ts';

/** Mixtral's step workspaces: routing (experts, weights, slot, perm [R·K], offsets [E + 1], active [E]) and the
 *  rows in expert order: inputs x (int8 or fp16) + scales sx, gate|up gu, SwiGLU h (+ hsx), outputs y. */
interface MoeWorkspace {
  experts: DeviceBuffer; weights: DeviceBuffer; slot: DeviceBuffer; perm: DeviceBuffer; offsets: DeviceBuffer; active: DeviceBuffer;
  x: DeviceBuffer; sx: DeviceBuffer; gu: DeviceBuffer; h: DeviceBuffer; hsx: DeviceBuffer; y: DeviceBuffer;
  /** Each MoE block's expert tables (grouped-gemm.ts's expertTable) of its gate|up and down linears. */
  tables: Map<MoeFeedForward<DeviceLinear>, { gateUp: DeviceBuffer; down: DeviceBuffer }>;
}

/** An activation on the device: fp16 rows, or int8 rows with per-row fp32 scales. */
export type Act = { f16: bigint } | { q: bigint; sx: bigint };

export interface Sampling {
  /** 0: greedy */
  temperature: number;
  topP: number;
  seed: number;
}
export const GREEDY: Sampling = { temperature: 0, topP: 1, seed: 0 };

export interface EngineOptions {
  /** Sequence slots of the KV cache (the largest decode batch). */
  maxBatch: number;
  /** Positions per slot. */
  maxSeq: number;
  /** Tokens per forward step (prefill chunks; default max(maxBatch, 2048)). */
  maxRows?: number;
  /** Keep logits of every row (perplexity), not only each sequence's last: logits sized maxRows × vocab. */
  allLogits?: boolean;
}

/** One sequence's part of a step: `tokens` at positions pos .. in cache slot `slot`. */
export interface SeqChunk {
  slot: number;
  pos: number;
  tokens: readonly number[];
}

interface StepShape {
  rows: number;
  seqs: number;
  /** Largest T·rep of a (sequence, KV head): attention's grid. */
  maxRowsPerSeq: number;
  logitRows: number;
  /** Gather each sequence's last row for the logits (else every row). */
  gather: boolean;
  /** A decode step (one token per sequence, row s = sequence s) splitting the keys this many ways; prefill when absent. */
  decodeSplits?: number;
  ids: bigint;
  /** Op categories whose kernels are not launched (timelines time the step without them). */
  skip?: ReadonlySet<StepOpName>;
}

/** The kinds of launches a step makes (what a timeline reports). */
export const STEP_OPS = ['embed', 'rmsnorm', 'gemm qkv', 'rope + kv', 'attention', 'gemm o', 'gemm gateUp', 'swiglu', 'gemm down',
  'moe topk', 'moe align', 'moe gather', 'moe gemm gateUp', 'moe swiglu', 'moe gemm down', 'moe combine', 'lm head', 'sample'] as const;
export type StepOpName = (typeof STEP_OPS)[number];

export class CudaEngine {
  readonly kernels: EngineKernels;
  readonly stream: Stream;
  readonly cache: KvCache;
  readonly gemm: GemmRunner;
  readonly maxRows: number;
  readonly maxLogitRows: number;
  readonly handles: ModelHandles<DeviceLinear, DeviceBuffer>;
  private readonly bufs: DeviceBuffer[] = [];
  // activations
  readonly x: DeviceBuffer; readonly hf: DeviceBuffer; readonly hq: DeviceBuffer; readonly sx: DeviceBuffer;
  readonly qkv: DeviceBuffer; readonly att: DeviceBuffer; readonly att32: DeviceBuffer; readonly gu: DeviceBuffer;
  readonly normed: DeviceBuffer; readonly logits: DeviceBuffer;
  readonly wsO: DeviceBuffer; readonly wsMl: DeviceBuffer; readonly attnAmax: DeviceBuffer; readonly attnCounters: DeviceBuffer;
  // step metadata and decode state
  readonly seqStart: DeviceBuffer; readonly seqLen: DeviceBuffer; readonly seqPos0: DeviceBuffer; readonly seqSlot: DeviceBuffer;
  readonly rowSeq: DeviceBuffer; readonly ids: DeviceBuffer; readonly gather: DeviceBuffer;
  readonly decodeIds: DeviceBuffer; readonly history: DeviceBuffer; readonly step: DeviceBuffer;
  readonly cos: DeviceBuffer; readonly sin: DeviceBuffer;
  private readonly graphs = new Map<string, Graph>();
  /** The op kinds the last step launched (or would have, less a timeline's skips): what a timeline times. */
  readonly stepOps = new Set<StepOpName>();
  /** Programmatic dependent launch in decode steps (sm_90+; INTSCALE_PDL=0 turns it off). */
  readonly pdl: boolean;
  /** Mixtral's workspaces (rows in expert order: topK per step row), when a layer is a mixture of experts. */
  readonly moe: MoeWorkspace | undefined;

  constructor(readonly gpu: Gpu, readonly model: DeviceModel, readonly opts: EngineOptions, kernels?: EngineKernels) {
    const c = model.config;
    this.kernels = kernels ?? new EngineKernels(gpu);
    this.pdl = gpu.cc[0] >= 9 && process.env['INTSCALE_PDL'] !== '0';
    this.stream = gpu.stream();
    this.maxRows = opts.maxRows ?? Math.max(opts.maxBatch, 2048);
    if (this.maxRows < opts.maxBatch) fail('engine', `maxRows ${this.maxRows} < maxBatch ${opts.maxBatch}`);
    this.maxLogitRows = opts.allLogits ? this.maxRows : opts.maxBatch;
    this.cache = new KvCache(gpu, c, opts.maxBatch, opts.maxSeq);
    this.gemm = new GemmRunner(gpu);
    try {
      const R = this.maxRows, qDim = c.nHeads * c.headDim, qkvDim = (c.nHeads + 2 * c.nKvHeads) * c.headDim, H = c.hiddenDim;
      const a = (bytes: number) => { const b = gpu.alloc(Math.max(16, bytes)); this.bufs.push(b); return b; };
      this.x = a(R * c.dim * 2);
      this.hf = a(R * Math.max(c.dim, H) * 2);
      this.hq = a(R * Math.max(c.dim, H, qDim));
      this.sx = a(R * 4);
      this.qkv = a(R * qkvDim * 2);
      this.att = a(R * qDim * 2);
      this.att32 = a(inputFormat(model.layers[0]!.o) === 'q8' ? R * qDim * 4 : 16);
      this.gu = a(R * 2 * H * 2);
      this.normed = a(this.maxLogitRows * c.dim * 2);
      this.logits = a(this.maxLogitRows * c.vocabSize * 4);
      let wsRows = 1;
      for (let B = 1; B <= opts.maxBatch; B++) wsRows = Math.max(wsRows, B * c.nHeads * this.decodeSplits(B));
      this.wsO = a(wsRows * c.headDim * 4);
      this.wsMl = a(wsRows * 2 * 4);
      this.attnAmax = a(opts.maxBatch * c.nKvHeads * 4);
      this.attnCounters = a((opts.maxBatch * c.nKvHeads + opts.maxBatch) * 4);
      gpu.memset(this.attnCounters, 0);  // attention_decode leaves them zero
      const S = Math.max(opts.maxBatch, R);
      this.seqStart = a(S * 4); this.seqLen = a(S * 4); this.seqPos0 = a(S * 4); this.seqSlot = a(S * 4);
      this.rowSeq = a(R * 4); this.ids = a(R * 4); this.gather = a(S * 4);
      this.decodeIds = a(opts.maxBatch * 4);
      this.history = a((opts.maxSeq + 1) * opts.maxBatch * 4);
      this.step = a(4);
      const rope = ropeTables(c.rope, c.headDim, opts.maxSeq);
      this.cos = a(rope.cos.byteLength); gpu.copyToDevice(this.cos, rope.cos);
      this.sin = a(rope.sin.byteLength); gpu.copyToDevice(this.sin, rope.sin);
      const moeFfn = model.layers.map((l) => l.ffn).find((f) => f.kind === 'moe');
      if (moeFfn && moeFfn.kind === 'moe') {
        const G = R * moeFfn.topK, E = moeFfn.experts.length;
        const tables = new Map<MoeFeedForward<DeviceLinear>, { gateUp: DeviceBuffer; down: DeviceBuffer }>();
        const table = (ls: DeviceLinear[]) => { const b = expertTable(gpu, ls); this.bufs.push(b); return b; };
        for (const { ffn } of model.layers) {
          if (ffn.kind === 'moe') tables.set(ffn, { gateUp: table(ffn.experts.map((x) => x.gateUp)), down: table(ffn.experts.map((x) => x.down)) });
        }
        this.moe = {
          experts: a(G * 4), weights: a(G * 4), slot: a(G * 4), perm: a(G * 4), offsets: a((E + 1) * 4), active: a(E * 4),
          x: a(G * c.dim * 2), sx: a(G * 4), gu: a(G * 2 * H * 2), h: a(G * H * 2), hsx: a(G * 4), y: a(G * c.dim * 2), tables,
        };
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
    this.handles = {
      layers: model.layers.map((l) => ({ attnNorm: l.attnNorm, qkv: l.qkv, o: l.o, ffnNorm: l.ffnNorm, ffn: l.ffn })),
      finalNorm: model.finalNorm,
      head: model.head,
    };
  }

  /** Whether a decode step of batch B can be captured as a graph (a mixture of experts: when its
   *  projections run grouped, B ≤ GROUPED_MAX_ROWS; above, its per-expert GEMMs follow the row
   *  counts the step's routing read back). */
  graphable(B: number): boolean {
    return this.moe === undefined || B <= GROUPED_MAX_ROWS;
  }

  /** Whether decode steps can run attention_decode.cu (else the prefill kernel, unsplit). */
  get fusedDecodeAttention(): boolean {
    const c = this.model.config;
    return fusedDecodeFits(c.nHeads, c.nKvHeads, c.headDim);
  }

  /** KV splits of a decode step at batch B (decode-splits.ts). */
  decodeSplits(B: number): number {
    const forced = process.env['INTSCALE_DECODE_SPLITS'];  // experiments: a fixed count
    if (forced) return Math.max(1, Math.min(ATTN_DECODE_MAX_SPLITS, Number.parseInt(forced, 10) || 1));
    return decodeAttentionSplits(B * this.model.config.nKvHeads, this.gpu.smCount, Math.ceil(this.opts.maxSeq / ATTN_KEYS_PER_TILE));
  }

  private upload(buf: DeviceBuffer, values: number[]): void {
    this.gpu.copyToDevice(buf, Int32Array.from(values));
  }

  // ---- eager steps (prefill, scoring) --------------------------------------------------------

  /** Run one step over `chunks` (their total tokens ≤ maxRows; slots distinct). Logits stay on the device. */
  runStep(chunks: readonly SeqChunk[], o: { allLogits?: boolean } = {}): number {
    const { shape, logitRows } = this.stageStep(chunks, o.allLogits ?? false);
    this.forward(shape);
    return logitRows;
  }

  /**
   * runStep for a step whose every chunk is one token (a continuous batch's decode step), replayed
   * from a CUDA graph of its row count: captured right after that count's first step, which runs
   * eagerly and makes every plan. The graph holds runStep's launches with the same arguments (the
   * step's slots, positions and ids are read from the device buffers uploaded here), so its logits
   * equal runStep's bit for bit. Any other step, and an MoE step above the grouped GEMMs' rows, runs
   * eagerly.
   */
  runDecodeStep(chunks: readonly SeqChunk[]): number {
    const n = chunks.length;
    if (!this.graphable(n) || chunks.some((ch) => ch.tokens.length !== 1)) return this.runStep(chunks);
    const { shape, logitRows } = this.stageStep(chunks, false);
    const key = `step:${n}`;
    const g = this.graphs.get(key);
    if (g) {
      g.launch(this.stream);
    } else {
      this.forward(shape);
      this.graphs.set(key, this.gpu.capture(this.stream, () => this.forward(shape)));
    }
    return logitRows;
  }

  /** Check a step and upload its metadata (rows, sequences, slots, positions, ids); its shape and logit rows. */
  private stageStep(chunks: readonly SeqChunk[], all: boolean): { shape: StepShape; logitRows: number } {
    const c = this.model.config, n = chunks.length;
    if (n === 0) fail('engine', 'empty step');
    const starts: number[] = [], rowSeq: number[] = [], ids: number[] = [], last: number[] = [];
    let rows = 0, maxT = 0;
    chunks.forEach((ch, i) => {
      const T = ch.tokens.length;
      if (T === 0) fail('engine', `sequence ${i} has no tokens`);
      if (ch.slot < 0 || ch.slot >= this.cache.slots) fail('engine', `slot ${ch.slot} outside 0..${this.cache.slots - 1}`);
      if (ch.pos + T > this.cache.maxSeq) fail('engine', `sequence of ${ch.pos + T} positions exceeds --max-seq ${this.cache.maxSeq}`);
      for (const id of ch.tokens) if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) fail('forward', `token id ${id} outside the vocabulary of ${c.vocabSize}`);
      starts.push(rows);
      for (let t = 0; t < T; t++) rowSeq.push(i);
      ids.push(...ch.tokens);
      rows += T;
      last.push(rows - 1);
      maxT = Math.max(maxT, T);
    });
    if (new Set(chunks.map((ch) => ch.slot)).size !== n) fail('engine', 'a slot appears twice in one step');
    if (rows > this.maxRows) fail('engine', `${rows} tokens exceed the step size of ${this.maxRows}`);
    if (all && rows > this.maxLogitRows) fail('engine', `logits of ${rows} rows exceed the ${this.maxLogitRows} kept (allLogits)`);
    if (!all && n > this.maxLogitRows) fail('engine', `${n} sequences exceed --max-batch ${this.maxLogitRows}`);
    this.upload(this.seqStart, starts);
    this.upload(this.seqLen, chunks.map((ch) => ch.tokens.length));
    this.upload(this.seqPos0, chunks.map((ch) => ch.pos));
    this.upload(this.seqSlot, chunks.map((ch) => ch.slot));
    this.upload(this.rowSeq, rowSeq);
    this.upload(this.ids, ids);
    if (!all) this.upload(this.gather, last);
    const rep = c.nHeads / c.nKvHeads;
    const logitRows = all ? rows : n;
    return { shape: { rows, seqs: n, maxRowsPerSeq: maxT * rep, logitRows, gather: !all, ids: this.ids.ptr }, logitRows };
  }

  /** The step's logits, rows × vocab fp32 (synchronous). */
  readLogits(rows: number): Float32Array {
    this.stream.sync();
    return this.gpu.download(this.logits, new Float32Array(rows * this.model.config.vocabSize));
  }

  /** Sample one id per logit row of the last step (on the GPU) and return them. */
  sampleRows(rows: number, sampling: Sampling, stepIndex = 0): number[] {
    this.upload(this.step, [stepIndex]);
    this.kernels.sample(this.logits, rows, this.model.config.vocabSize, this.decodeIds, this.history, this.step, sampling, this.stream);
    this.stream.sync();
    return Array.from(this.gpu.download(this.decodeIds, new Int32Array(rows)));
  }

  private forward(st: StepShape): void {
    this.stepOps.clear();
    forwardStep(new CudaStepOps(this, st), this.handles);
  }

  // ---- decode ----------------------------------------------------------------------------------

  /**
   * Make slots 0..B-1 the decode batch: next input ids and positions (each sequence's length so far);
   * the device step counter starts at `step` (history row of the first decoded token).
   */
  beginDecode(nextIds: readonly number[], positions: readonly number[], step = 1): void {
    const B = nextIds.length;
    if (B < 1 || B > this.cache.slots) fail('engine', `decode batch ${B} outside 1..${this.cache.slots}`);
    const seq = Array.from({ length: B }, (_, b) => b);
    this.upload(this.seqStart, seq);
    this.upload(this.seqLen, seq.map(() => 1));
    this.upload(this.seqSlot, seq);
    this.upload(this.rowSeq, seq);
    this.upload(this.gather, seq);
    this.upload(this.seqPos0, [...positions]);
    this.upload(this.decodeIds, [...nextIds]);
    this.upload(this.step, [step]);
  }

  /** The launches of one decode step of batch B (eager, or recorded under capture), less `skip`'s ops (timelines). */
  decodeLaunches(B: number, sampling: Sampling, skip?: ReadonlySet<StepOpName>): void {
    const rep = this.model.config.nHeads / this.model.config.nKvHeads;
    // consecutive kernels overlap launch and prologue with their predecessor's tail (sm_90)
    this.kernels.pdl = this.pdl;
    try {
      this.forward({ rows: B, seqs: B, maxRowsPerSeq: rep, logitRows: B, gather: true,
        ...(this.fusedDecodeAttention ? { decodeSplits: this.decodeSplits(B) } : {}), ids: this.decodeIds.ptr, skip });
      this.stepOps.add('sample');
      if (skip?.has('sample')) return;
      this.kernels.sample(this.logits, B, this.model.config.vocabSize, this.decodeIds, this.history, this.step, sampling, this.stream);
      this.kernels.advance(this.seqPos0, this.step, B, this.stream);
    } finally {
      this.kernels.pdl = false;
    }
  }

  /**
   * Queue `steps` decode steps of batch B (after beginDecode): replays of the step's CUDA graph
   * (captured on first use), or plain launches with graph = false. Returns at once; readHistory waits.
   */
  decode(B: number, steps: number, sampling: Sampling = GREEDY, graph = true): void {
    if (!graph || !this.graphable(B)) {
      for (let i = 0; i < steps; i++) this.decodeLaunches(B, sampling);
      return;
    }
    const g = this.decodeGraph(B, sampling);
    for (let i = 0; i < steps; i++) g.launch(this.stream);
  }

  /** The decode graph of batch B (captured once, after an eager warm-up step that makes every plan). */
  decodeGraph(B: number, sampling: Sampling): Graph {
    const key = `${B}:${sampling.temperature}:${sampling.topP}:${sampling.seed}`;
    let g = this.graphs.get(key);
    if (!g) {
      if (!this.graphable(B)) fail('engine', `a mixture-of-experts model decodes batches above ${GROUPED_MAX_ROWS} without a CUDA graph (its expert GEMMs follow each step's routing)`);
      this.prepareDecode(B);
      g = this.gpu.capture(this.stream, () => this.decodeLaunches(B, sampling));
      this.graphs.set(key, g);
    }
    return g;
  }

  /** The on-device decode state of batch B (positions, next ids, step counter). */
  saveDecodeState(B: number): { pos: Int32Array; ids: Int32Array; step: Int32Array } {
    this.stream.sync();
    return {
      pos: this.gpu.download(this.seqPos0, new Int32Array(B)),
      ids: this.gpu.download(this.decodeIds, new Int32Array(B)),
      step: this.gpu.download(this.step, new Int32Array(1)),
    };
  }

  restoreDecodeState(s: { pos: Int32Array; ids: Int32Array; step: Int32Array }): void {
    this.stream.sync();
    this.gpu.copyToDevice(this.seqPos0, s.pos);
    this.gpu.copyToDevice(this.decodeIds, s.ids);
    this.gpu.copyToDevice(this.step, s.step);
  }

  /** Make every plan and module the decode step of batch B needs, without changing the state. */
  prepareDecode(B: number): void {
    // GEMM plans per M are made on first run(); run one eager step and put the state back (slots
    // keep their contents: the step writes K/V at the current positions, which the real step overwrites).
    const saved = this.saveDecodeState(B);
    this.decodeLaunches(B, GREEDY);
    this.restoreDecodeState(saved);
  }

  /** Token ids of decode history rows [from, to) for batch B (synchronous). */
  readHistory(B: number, from: number, to: number): Int32Array[] {
    this.stream.sync();
    const all = this.gpu.download(this.history, new Int32Array(to * B));
    return Array.from({ length: to - from }, (_, i) => all.subarray((from + i) * B, (from + i + 1) * B));
  }

  destroy(): void {
    for (const g of this.graphs.values()) g.destroy();
    this.graphs.clear();
    this.gemm?.destroy();
    this.cache?.free();
    for (const b of this.bufs) if (!b.freed) b.free();
  }
}

/** The CUDA backend's ops for one step: every op one or two kernel launches on the engine's stream. */
class CudaStepOps implements StepOps<Act, DeviceLinear, DeviceBuffer> {
  constructor(private readonly e: CudaEngine, private readonly st: StepShape) {}

  private get s(): Stream { return this.e.stream; }
  /** Whether op `name`'s kernels run in this step (all do, except in a timeline's variants). */
  private runs(name: StepOpName): boolean {
    this.e.stepOps.add(name);
    return !this.st.skip?.has(name);
  }

  /** x in the format linear `w` consumes (fp16 → int8 + scales through quantize_act). */
  private asInput(x: Act, w: DeviceLinear): Act {
    if (inputFormat(w) === 'f16') {
      if (!('f16' in x)) fail('engine', 'an fp16 linear got int8 activations');
      return x;
    }
    if ('q' in x) return x;
    this.e.kernels.quantizeAct(x.f16, this.e.hq, this.e.sx, this.st.rows, w.inFeatures, this.s);
    return { q: this.e.hq.ptr, sx: this.e.sx.ptr };
  }

  embed(): Act {
    const c = this.e.model.config;
    if (this.runs('embed')) this.e.kernels.embed(this.e.model.embed, this.st.ids, this.e.x, this.st.rows, c.vocabSize, c.dim, this.s);
    return { f16: this.e.x.ptr };
  }

  rmsnorm(x: Act, weight: DeviceBuffer, consumer: DeviceLinear): Act {
    if (!('f16' in x)) fail('engine', 'rmsnorm of int8 activations');
    const c = this.e.model.config, q8 = inputFormat(consumer) === 'q8';
    if (this.runs('rmsnorm')) this.e.kernels.rmsnorm(x.f16, weight, this.st.rows, c.dim, c.normEps, q8 ? { q: this.e.hq, sx: this.e.sx } : { f16: this.e.hf }, undefined, this.s);
    return q8 ? { q: this.e.hq.ptr, sx: this.e.sx.ptr } : { f16: this.e.hf.ptr };
  }

  private outFor(w: DeviceLinear): DeviceBuffer {
    if (w.role === 'qkv') return this.e.qkv;
    if (w.role === 'gateUp') return this.e.gu;
    return fail('engine', `no output buffer for a ${w.role} linear`);
  }

  linear(x: Act, w: DeviceLinear): Act {
    const out = this.outFor(w);
    if (this.runs(`gemm ${w.role}` as StepOpName)) this.e.gemm.run(w, this.st.rows, this.asInput(x, w), out, this.s, { pdl: this.e.kernels.pdl });
    return { f16: out.ptr };
  }

  linearAdd(x: Act, w: DeviceLinear, residual: Act): void {
    if (!('f16' in residual)) fail('engine', 'the residual stream is fp16');
    if (this.runs(`gemm ${w.role}` as StepOpName)) this.e.gemm.run(w, this.st.rows, this.asInput(x, w), residual.f16, this.s, { residual: residual.f16, pdl: this.e.kernels.pdl });
  }

  attention(qkv: Act, layer: number, consumer: DeviceLinear): Act {
    if (!('f16' in qkv)) fail('engine', 'attention of int8 activations');
    const e = this.e, c = e.model.config, st = this.st;
    const common = { seqStart: e.seqStart, seqPos0: e.seqPos0, seqSlot: e.seqSlot, kcache: e.cache.k[layer]!, vcache: e.cache.v[layer]!,
      nH: c.nHeads, nKv: c.nKvHeads, hd: c.headDim, maxSeq: e.cache.maxSeq };
    const rope = { bias: e.model.layers[layer]!.qkvBias, cos: e.cos, sin: e.sin, interleaved: c.rope.layout === 'interleaved' };
    // a W4A8 o projection gets attention's output quantized from fp32, like the CPU engine's
    const q8 = inputFormat(consumer) === 'q8', window = c.slidingWindow ?? 0;
    if (st.decodeSplits !== undefined) {  // one kernel: RoPE + KV append, split-KV, merge and (for W4A8) the int8 rows
      if (this.runs('attention')) e.kernels.attentionDecode({ ...common, ...rope, qkv: qkv.f16, B: st.seqs, window, splits: st.decodeSplits,
        wsO: e.wsO, wsMl: e.wsMl, amax: e.attnAmax, counters: e.attnCounters,
        ...(q8 ? { out32: e.att32, q8: { q: e.hq, sx: e.sx } } : { out: e.att }) }, this.s);
      return q8 ? { q: e.hq.ptr, sx: e.sx.ptr } : { f16: e.att.ptr };
    }
    if (this.runs('rope + kv')) e.kernels.ropeKv({ ...common, ...rope, qkv: qkv.f16, rowSeq: e.rowSeq, rows: st.rows }, this.s);
    if (this.runs('attention')) e.kernels.attention({ ...common, qkv: qkv.f16, out: e.att, seqLen: e.seqLen, seqs: st.seqs,
      maxRowsPerSeq: st.maxRowsPerSeq, window, ...(q8 ? { out32: e.att32 } : {}) }, this.s);
    if (!q8) return { f16: e.att.ptr };
    if (this.runs('attention')) e.kernels.quantizeF32(e.att32, e.hq, e.sx, st.rows, c.nHeads * c.headDim, this.s);
    return { q: e.hq.ptr, sx: e.sx.ptr };
  }

  swiglu(gateUp: Act, consumer: DeviceLinear): Act {
    if (!('f16' in gateUp)) fail('engine', 'swiglu of int8 activations');
    const q8 = inputFormat(consumer) === 'q8';
    if (this.runs('swiglu')) this.e.kernels.swiglu(gateUp.f16, this.st.rows, this.e.model.config.hiddenDim, q8 ? { q: this.e.hq, sx: this.e.sx } : { f16: this.e.hf }, this.s);
    return q8 ? { q: this.e.hq.ptr, sx: this.e.sx.ptr } : { f16: this.e.hf.ptr };
  }

  /**
   * Mixtral's sparse MoE block: moe_topk + moe_align route the step's rows (h: the fp16 RMSNorm
   * output the router consumes), gather_rows puts the experts' inputs in expert order (int8 + scales
   * for W4A8, else fp16), the gate|up GEMMs, SwiGLU once over all the rows, the down GEMMs, and
   * moe_combine adds Σ_k w·y to the residual. A step of up to GROUPED_MAX_ROWS rows runs each
   * projection as one grouped GEMM over the device-side offsets (graph-capturable); a larger one
   * reads the row counts back (a sync) and runs one GEMM per routed expert.
   */
  moeAdd(h: Act, ffn: MoeFeedForward<DeviceLinear>, residual: Act): void {
    if (!('f16' in h) || !('f16' in residual)) fail('engine', 'the mixture of experts takes fp16 rows');
    const e = this.e, ws = e.moe, c = e.model.config, M = this.st.rows, K = ffn.topK, E = ffn.experts.length, H = c.hiddenDim, dim = c.dim;
    if (!ws) fail('engine', 'no mixture-of-experts workspace');
    const k = e.kernels, s = this.s, G = M * K;
    const q8 = inputFormat(ffn.experts[0]!.gateUp) === 'q8';
    // (a timeline variant without the routing reuses the last step's)
    if (this.runs('moe topk')) k.moeTopk(h.f16, ffn.router.weight, M, dim, E, K, ws.experts, ws.weights, s);
    if (this.runs('moe align')) k.moeAlign(ws.experts, M, E, K, ws.offsets, ws.perm, ws.slot, ws.active, s);
    if (this.runs('moe gather')) {
      if (q8) {
        k.quantizeAct(h.f16, e.hq, e.sx, M, dim, s);
        k.gatherRows(e.hq, ws.perm, ws.x, G, dim, s);
        k.gatherRows(e.sx, ws.perm, ws.sx, G, 4, s);
      } else k.gatherRows(h.f16, ws.perm, ws.x, G, dim * 2, s);
    }
    // one projection over every routed expert's rows: x (rows of `width`) → out (rows of `outWidth`)
    const project = this.expertProjection(ffn, M, q8);
    if (this.runs('moe gemm gateUp')) project('gateUp', ws.x, ws.sx, dim, ws.gu, 2 * H);
    if (this.runs('moe swiglu')) k.swiglu(ws.gu, G, H, q8 ? { q: ws.h, sx: ws.hsx } : { f16: ws.h }, s);
    if (this.runs('moe gemm down')) project('down', ws.h, ws.hsx, H, ws.y, dim);
    if (this.runs('moe combine')) k.moeCombine(ws.y, ws.slot, ws.weights, residual.f16, M, K, dim, s);
  }

  /**
   * How moeAdd runs a projection of its experts: grouped (one launch over the device-side offsets)
   * for steps of up to GROUPED_MAX_ROWS rows; else the offsets come back to the host (a sync) and
   * each routed expert's GEMM runs on its block of rows.
   */
  private expertProjection(ffn: MoeFeedForward<DeviceLinear>, M: number, q8: boolean):
    (which: 'gateUp' | 'down', x: DeviceBuffer, sx: DeviceBuffer, width: number, out: DeviceBuffer, outWidth: number) => void {
    const e = this.e, ws = e.moe!, s = this.s, E = ffn.experts.length;
    const at = (b: DeviceBuffer, row: number, bytesPerRow: number) => b.ptr + BigInt(row * bytesPerRow);
    const input = (x: DeviceBuffer, sx: DeviceBuffer, row: number, width: number): Act =>
      q8 ? { q: at(x, row, width), sx: at(sx, row, 4) } : { f16: at(x, row, width * 2) };
    if (M <= GROUPED_MAX_ROWS) {
      const t = ws.tables.get(ffn) ?? fail('engine', 'no expert tables for this mixture of experts');
      const routing = { active: ws.active, offsets: ws.offsets, slots: Math.min(E, M * ffn.topK) };
      return (which, x, sx, width, out) =>
        e.gemm.runGrouped(ffn.experts[0]![which], t[which], routing, M, input(x, sx, 0, width), out.ptr, s, e.kernels.pdl);
    }
    s.sync();
    const off = e.gpu.download(ws.offsets, new Int32Array(E + 1));
    return (which, x, sx, width, out, outWidth) => ffn.experts.forEach((l, i) => {
      const m = off[i + 1]! - off[i]!;
      if (m > 0) e.gemm.run(l[which], m, input(x, sx, off[i]!, width), at(out, off[i]!, outWidth * 2), s);
    });
  }

  logits(x: Act, finalNorm: DeviceBuffer, head: DeviceLinear): void {
    if (!('f16' in x)) fail('engine', 'logits of int8 activations');
    const e = this.e, c = e.model.config, R = this.st.logitRows;
    if (!this.runs('lm head')) return;
    e.kernels.rmsnorm(x.f16, finalNorm, R, c.dim, c.normEps, { f16: e.normed }, this.st.gather ? e.gather : undefined, this.s);
    e.gemm.run(head, R, { f16: e.normed.ptr }, e.logits, this.s, { f32Out: true });
  }
}

