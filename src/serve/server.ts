// A completions server over continuous batching (batcher.ts): the subset of the OpenAI API that
// completion clients use. POST /v1/completions {prompt: string | token ids | a list of either, n,
// max_tokens, temperature, top_p, seed, stop (strings), stream, stop_at_eos} answers one
// text_completion with a choice per prompt and sample (choice i·n + j: prompt i with seed + j) (or,
// with stream, server-sent events: one chunk per text delta, a last chunk with the finish reason,
// then [DONE]); POST /v1/chat/completions {messages: [{role, content}], the same options} renders
// the messages with the model's chat template (chat-template.ts) and answers one chat.completion
// (stream: chat.completion.chunk deltas); `logprobs` (completions: 0–5 alternatives; chat: true
// and top_logprobs 0–20) reports each new token's log-probability under the raw logits, streamed
// with the delta its text starts in (logprobs.ts); `echo` puts the prompt first (with logprobs,
// scored: StepBackend.promptLogits). The shapes and field checks are openai-api.ts's.
// GET /health, GET /v1/models and GET /metrics (Prometheus text: requests, tokens, steps, running
// and waiting); with an API key, /v1/ routes need it. Requests join the engine's running batch at its next step and leave
// it when they end, or when their client goes away. One engine loop: plan, run, sample, commit,
// then the event loop takes new requests before the next step. A request with seed s gets what
// `generate` alone gives its prompt with seed s (the sampling is per request, on the host).
import * as http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { yieldForSignals } from '../core/interrupt.ts';
import { Rng } from '../core/rng.ts';
import { TextStreamer, type Tokenizer } from '../io/tokenizer.ts';
import { sampleToken, type SamplingOptions } from '../model/sampling.ts';
import { IntscaleError } from '../core/errors.ts';
import { ContinuousBatcher, type FinishReason } from './batcher.ts';
import type { ChatTemplate } from './chat-template.ts';
import { promptTokens, reportedToken, tokenLogprob, type ReportedToken, type TokenLogprob } from './logprobs.ts';
import { BadRequest, CHAT_FORMAT, COMPLETION_FORMAT, MAX_CHOICES, chatMessages, completionOptions, type ResponseFormat } from './openai-api.ts';
import { advance, type StepBackend } from './generate-continuous.ts';

export interface ServerOptions {
  /** The name /v1/models lists and responses carry. */
  model: string;
  /** max_tokens when a request gives none. */
  defaultMaxTokens?: number;
  /** What /v1/chat/completions renders messages with (absent: it answers 400). */
  chatTemplate?: ChatTemplate;
  /** When set, /v1/ routes need "Authorization: Bearer <apiKey>" (401 otherwise). */
  apiKey?: string;
}

interface Pending {
  rng: Rng;
  sampling: SamplingOptions;
  streamer: TextStreamer;
  /** The completion so far (cut before a stop string once one appears) and how much of it was streamed. */
  text: string;
  sent: number;
  /** Stop strings (the request ends before the first one that appears; it is not returned). */
  stops: string[];
  stoppedByString: boolean;
  tokens: number;
  promptTokens: number;
  /** logprobs asked for: how many alternatives per token (0: the sampled token's only). */
  logprobs?: number;
  /** The last sampled token's logprobs (until it is emitted) and the previous id (token texts follow it). */
  sampled?: TokenLogprob;
  prev: number;
  reported: ReportedToken[];
  /** Reported tokens already streamed. */
  reportedSent: number;
  onDelta?: (text: string, tokens: readonly ReportedToken[]) => void;
  resolve: (finish: FinishReason | 'failed') => void;
}

const MAX_BODY_BYTES = 1 << 20;

export class CompletionServer {
  private readonly batcher: ContinuousBatcher;
  private readonly pending = new Map<number, Pending>();
  private readonly server: http.Server;
  private looping = false;
  private failure: Error | undefined;
  /** Engine steps so far and Σ sequences over them (the batch the steps ran). */
  readonly stats = { steps: 0, sequenceSteps: 0, requests: 0, promptTokens: 0, newTokens: 0 };

  constructor(private readonly backend: StepBackend, private readonly tokenizer: Tokenizer, private readonly opts: ServerOptions) {
    this.batcher = new ContinuousBatcher([], { slots: backend.slots, maxRows: backend.maxRows, maxSeq: backend.maxSeq });
    this.server = http.createServer((req, res) => { void this.handle(req, res); });
  }

  /** Listen; resolves with the port (0 picks a free one). */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as { port: number }).port));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.method === 'GET' && req.url === '/health') return send(200, { status: this.failure ? 'failed' : 'ok' });
      if (this.opts.apiKey !== undefined && req.url?.startsWith('/v1/') && !sameSecret(req.headers.authorization, `Bearer ${this.opts.apiKey}`))
        return send(401, { error: { message: 'a valid API key is needed: "Authorization: Bearer <key>"', type: 'invalid_request_error' } });
      if (req.method === 'GET' && req.url === '/v1/models') return send(200, { object: 'list', data: [{ id: this.opts.model, object: 'model' }] });
      if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(this.metrics());
        return;
      }
      const chat = req.url === '/v1/chat/completions';
      if (req.url !== '/v1/completions' && !chat) return send(404, { error: { message: `no route ${req.method} ${req.url}`, type: 'not_found' } });
      if (req.method !== 'POST') return send(405, { error: { message: 'POST a JSON body', type: 'invalid_request_error' } });
      if (this.failure) return send(500, { error: { message: `the engine failed: ${this.failure.message}`, type: 'server_error' } });
      const body = await readJson(req);
      if (chat) await this.complete([this.chatPromptIds(body['messages'])], body, res, send, CHAT_FORMAT);
      else await this.complete(this.prompts(body['prompt']), body, res, send, COMPLETION_FORMAT);
    } catch (e) {
      if (e instanceof BadRequest) return send(400, { error: { message: e.message, type: 'invalid_request_error' } });
      if (!res.headersSent) send(500, { error: { message: (e as Error).message, type: 'server_error' } });
      else res.end();
    }
  }

  private async complete(prompts: number[][], body: Record<string, unknown>, res: http.ServerResponse,
    send: (status: number, body: unknown) => void, format: ResponseFormat): Promise<void> {
    const { echo, maxNew, temperature, topP, seed, n, stream, stopAtEos, stopTokenIds, stops, logprobs } =
      completionOptions(body, format, this.opts.defaultMaxTokens ?? 16, this.tokenizer.vocabSize);
    if (prompts.length * n > MAX_CHOICES) throw new BadRequest(`${prompts.length} prompts × n = ${n} exceed the ${MAX_CHOICES} choices a request may ask for`);
    for (const prompt of prompts)
      if (prompt.length > this.backend.maxSeq) throw new BadRequest(`the prompt's ${prompt.length} tokens exceed the server's context of ${this.backend.maxSeq}`);
    const stopIdList = [...stopTokenIds, ...(stopAtEos && this.tokenizer.eosId !== undefined ? [this.tokenizer.eosId] : [])];
    const stopIds = stopIdList.length > 0 ? new Set(stopIdList) : undefined;
    if (echo && logprobs !== undefined && !this.backend.promptLogits)
      throw new BadRequest('echo with logprobs (the prompt\'s own logprobs) needs the CPU engine: this engine cannot score prompts yet');
    const echoes = prompts.map((prompt) => echo ? this.echoOf(prompt, logprobs) : { text: '', tokens: [] as ReportedToken[] });
    const echoOfChoice = (index: number) => echoes[Math.floor(index / n)]!;
    // choice i·n + j: prompt i, sample j with Rng(seed + j) (a prompt's choices do not depend on the others)
    const created = Math.floor(Date.now() / 1000), rid = `${format.idPrefix}-${this.stats.requests}`;
    const sentChunks = new Array<number>(prompts.length * n).fill(0);
    const chunk = (index: number, text: string, finish: string | null, tokens: readonly ReportedToken[]) => {
      const delta = { ...format.delta(text, finish, sentChunks[index]!++ === 0), index };
      return { id: rid, object: format.chunkObject, created, model: this.opts.model,
        choices: [logprobs === undefined ? delta : { ...delta, logprobs: format.logprobsObject(tokens) }] };
    };
    const write = (event: unknown) => res.write(`data: ${JSON.stringify(event)}\n\n`);
    const subs: { index: number; id: number; done: Promise<FinishReason | 'failed'> }[] = [];
    prompts.forEach((prompt, i) => {
      this.stats.promptTokens += prompt.length;
      for (let j = 0; j < n && maxNew > 0; j++) {
        const index = i * n + j, id = this.batcher.add({ prompt, maxNew, ...(stopIds ? { stopIds } : {}) });
        this.stats.requests++;
        const done = new Promise<FinishReason | 'failed'>((resolve) => {
          this.pending.set(id, {
            rng: new Rng(seed + j), sampling: { temperature, topP }, streamer: new TextStreamer(this.tokenizer, prompt), text: '', sent: 0,
            stops, stoppedByString: false, tokens: 0, promptTokens: prompt.length, resolve, prev: prompt[prompt.length - 1]!, reported: [], reportedSent: 0,
            ...(logprobs !== undefined ? { logprobs } : {}),
            ...(stream ? { onDelta: (text: string, tokens: readonly ReportedToken[]) => write(chunk(index, text, null, shifted(tokens, echoOfChoice(index).text.length))) } : {}),
          });
        });
        subs.push({ index, id, done });
      }
    });
    let finished = false;
    res.on('close', () => {  // the client went away before the end: give the slots back
      if (finished) return;
      for (const { id } of subs) {
        const p = this.pending.get(id);
        this.batcher.cancel(id);
        this.pending.delete(id);
        p?.resolve('length');
      }
    });
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      if (echo) for (let index = 0; index < prompts.length * n; index++) write(chunk(index, echoOfChoice(index).text, null, echoOfChoice(index).tokens));
    }
    void this.loop();
    let failed = false;
    // each choice ends on its own (streamed: its last chunk goes out as soon as it is done); with
    // max_tokens 0 (echo) there is nothing to generate
    const nothing = Array.from({ length: maxNew > 0 ? 0 : prompts.length * n }, (_, index) => {
      if (stream) write(chunk(index, '', 'length', []));
      return { index, finish: 'length', text: '', reported: [] as ReportedToken[], tokens: 0 };
    });
    const generated = await Promise.all(subs.map(async ({ index, id, done }) => {
      const reason = await done;
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (!p || res.destroyed) return undefined;  // cancelled: nobody to answer
      if (reason === 'failed') {
        failed = true;
        return undefined;
      }
      const finish = reason === 'stop' ? 'stop' : 'length';
      const text = p.stoppedByString ? p.text : p.text + p.streamer.flush();  // (a stop string ends the text where it starts)
      // (a stop string cut the text: only the tokens that start inside it are reported)
      const reported = p.reported.filter((t) => t.offset < text.length || (t.text === '' && t.offset === text.length));
      if (stream) write(chunk(index, text.slice(p.sent), finish, shifted(reported.slice(p.reportedSent), echoOfChoice(index).text.length)));
      return { index, finish, text, reported, tokens: p.tokens };
    }));
    const results = [...nothing, ...generated];
    finished = true;
    if (res.destroyed) return;
    if (failed) {
      const message = `the engine failed: ${this.failure?.message ?? 'unknown error'}`;
      if (!stream) return send(500, { error: { message, type: 'server_error' } });
      res.end(`data: ${JSON.stringify({ error: { message, type: 'server_error' } })}\n\n`);
      return;
    }
    if (stream) {
      res.end('data: [DONE]\n\n');
      return;
    }
    const done = results.filter((r) => r !== undefined);
    const choices = done.map((r) => {
      const e = echoOfChoice(r.index);
      const choice = { ...format.choice(e.text + r.text, r.finish), index: r.index };
      if (logprobs === undefined) return choice;
      const tokens = [...e.tokens, ...shifted(r.reported, e.text.length)];
      return { ...choice, logprobs: format.logprobsObject(tokens) };
    });
    const promptTokens = prompts.reduce((a, p) => a + p.length, 0), completionTokens = done.reduce((a, r) => a + r.tokens, 0);
    send(200, { id: rid, object: format.object, created, model: this.opts.model, choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } });
  }

  /** Prometheus text: counters since start, and the requests running and waiting now. */
  private metrics(): string {
    const st = this.stats, running = this.batcher.active, waiting = this.pending.size - running;
    const lines: [string, string, number][] = [
      ['intscale_requests_total', 'counter', st.requests], ['intscale_prompt_tokens_total', 'counter', st.promptTokens],
      ['intscale_generated_tokens_total', 'counter', st.newTokens], ['intscale_engine_steps_total', 'counter', st.steps],
      ['intscale_step_sequences_total', 'counter', st.sequenceSteps], ['intscale_requests_running', 'gauge', running],
      ['intscale_requests_waiting', 'gauge', Math.max(0, waiting)], ['intscale_slots', 'gauge', this.backend.slots],
    ];
    return lines.map(([name, type, v]) => `# TYPE ${name} ${type}\n${name} ${v}\n`).join('');
  }

  /** A completion request's prompts: one (text or ids) or a list of them (texts, or lists of ids). */
  private prompts(v: unknown): number[][] {
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || Array.isArray(x))) return v.map((x) => this.promptIds(x));
    return [this.promptIds(v)];
  }

  /** The prompt's token ids: text (encoded from BOS) or an array of ids in the vocabulary. */
  private promptIds(v: unknown): number[] {
    if (typeof v === 'string') {
      const ids = this.tokenizer.encode(v, { addBos: true });
      if (ids.length === 0) throw new BadRequest('empty prompt and the tokenizer has no BOS token');
      return ids;
    }
    if (Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t) && t >= 0 && t < this.tokenizer.vocabSize)) return v as number[];
    throw new BadRequest(`"prompt" must be a string, a non-empty array of token ids below ${this.tokenizer.vocabSize}, or a list of either`);
  }

  /** What echo puts before a prompt's completion: its text and, with logprobs, its tokens' (the first has none). */
  private echoOf(prompt: readonly number[], logprobs: number | undefined): { text: string; tokens: ReportedToken[] } {
    const text = this.tokenizer.decode([...prompt]);
    if (logprobs === undefined) return { text, tokens: [] };
    const tokenText = (prev: number | undefined, id: number) => (prev === undefined ? this.tokenizer.decode([id]) : this.tokenizer.decodeToken(prev, id));
    return { text, tokens: promptTokens(this.backend.promptLogits!(prompt), prompt, logprobs, tokenText) };
  }

  /** A chat request's prompt ids: its messages through the chat template. */
  private chatPromptIds(v: unknown): number[] {
    const template = this.opts.chatTemplate;
    if (!template) throw new BadRequest('this server has no chat template (the model has none: start it with --chat-template FILE)');
    const messages = chatMessages(v);
    let ids: number[];
    try {
      ids = template.promptIds(messages, this.tokenizer);
    } catch (e) {
      if (e instanceof IntscaleError) throw new BadRequest(e.message);
      throw e;
    }
    if (ids.length === 0) throw new BadRequest('the chat template rendered an empty prompt');
    return ids;
  }

  /** The engine loop: steps while any request is queued or running, yielding between steps. */
  private async loop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    try {
      while (!this.batcher.done) {
        const { chunks, out } = advance(this.batcher, this.backend, (request, logits) => {
          const p = this.pending.get(request)!;
          const id = sampleToken(logits, p.rng, p.sampling);
          if (p.logprobs !== undefined) p.sampled = tokenLogprob(logits, id, p.logprobs);
          return id;
        });
        this.stats.steps++;
        this.stats.sequenceSteps += chunks.length;
        for (const t of out.tokens) {
          const p = this.pending.get(t.request);
          if (!p || p.stoppedByString) continue;
          p.tokens++;
          this.stats.newTokens++;
          if (p.sampled) {
            const prev = p.prev;
            p.reported.push(reportedToken(p.sampled, t.id, p.text.length, (id) => this.tokenizer.decodeToken(prev, id)));
            p.sampled = undefined;
          }
          p.prev = t.id;
          p.text += p.streamer.push(t.id);
          const at = firstStop(p.text, p.stops);
          if (at >= 0) {  // a stop string: the text ends before it, the sequence leaves the batch now
            p.text = p.text.slice(0, at);
            p.stoppedByString = true;
            this.batcher.cancel(t.request);
            p.resolve('stop');
            continue;
          }
          // stream what can no longer turn into a stop string
          const ready = p.text.length - Math.max(0, ...p.stops.map((x) => x.length - 1));
          if (p.onDelta && ready > p.sent) {
            // with the reported tokens that start before `ready` (their text is in this delta or an earlier one)
            let upTo = p.reportedSent;
            while (upTo < p.reported.length && p.reported[upTo]!.offset < ready) upTo++;
            p.onDelta(p.text.slice(p.sent, ready), p.reported.slice(p.reportedSent, upTo));
            p.sent = ready;
            p.reportedSent = upTo;
          }
        }
        for (const f of out.finished) {
          const p = this.pending.get(f.request);
          if (p && !p.stoppedByString) p.resolve(f.reason);  // (one that met a stop string was answered above)
        }
        await yieldForSignals();  // new requests join before the next step
      }
    } catch (e) {
      this.failure = e as Error;  // the engine is unusable: every waiting client gets a 500, and so does every new one
      for (const p of this.pending.values()) p.resolve('failed');
    } finally {
      this.looping = false;
    }
  }
}

/** Completion tokens with their offsets moved past an echoed prompt of `by` characters. */
function shifted(tokens: readonly ReportedToken[], by: number): ReportedToken[] {
  return by === 0 ? [...tokens] : tokens.map((t) => ({ ...t, offset: t.offset + by }));
}

/** Whether a request's header equals the expected secret (compared in constant time). */
function sameSecret(given: string | undefined, expected: string): boolean {
  const a = Buffer.from(given ?? ''), b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}



/** Where the first of `stops` starts in `text`, or -1. */
function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const x of stops) {
    const i = text.indexOf(x);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const part of req) {
    bytes += (part as Buffer).length;
    if (bytes > MAX_BODY_BYTES) throw new BadRequest(`request body over ${MAX_BODY_BYTES} bytes`);
    parts.push(part as Buffer);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (e) {
    throw new BadRequest(`the body is not JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadRequest('the body must be a JSON object');
  return v as Record<string, unknown>;
}


