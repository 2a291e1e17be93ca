// openai-api.ts — the request and answer shapes of the OpenAI completions API that server.ts
// serves: the two routes' answer formats (text_completion / chat.completion and their streamed
// chunks, with their logprobs objects), and the checks of a request body's fields, each problem a
// BadRequest (HTTP 400) whose message names the field.
import type { ChatMessage } from './chat-template.ts';
import { chatLogprobs, completionLogprobs, type ReportedToken } from './logprobs.ts';

/** Up to this many stop strings per request (as the OpenAI API allows). */
export const MAX_STOPS = 4;
/** Choices per request at most: prompts × n. */
export const MAX_CHOICES = 64;

/** A request body's problem (HTTP 400). */
export class BadRequest extends Error {}

/** How an endpoint's answers look: the whole one, and a streamed chunk's choice. */
export interface ResponseFormat {
  idPrefix: string;
  object: string;
  chunkObject: string;
  /** Whether the answer starts with the prompt (completions' echo; chat has none). */
  echo(body: Record<string, unknown>): boolean;
  /** The request's logprobs: alternatives per token, or undefined for none. */
  logprobs(body: Record<string, unknown>): number | undefined;
  logprobsObject(tokens: readonly ReportedToken[]): object;
  choice(text: string, finish: string | null): object;
  /** first: no chunk of this answer was sent yet. */
  delta(text: string, finish: string | null, first: boolean): object;
}

export const COMPLETION_FORMAT: ResponseFormat = {
  idPrefix: 'cmpl', object: 'text_completion', chunkObject: 'text_completion',
  echo: (body) => boolField(body, 'echo') === true,
  logprobs: (body) => (body['logprobs'] === undefined || body['logprobs'] === null ? undefined : intField(body, 'logprobs', 0, 0, 5)),
  logprobsObject: completionLogprobs,
  choice: (text, finish) => ({ index: 0, text, finish_reason: finish }),
  delta: (text, finish) => ({ index: 0, text, finish_reason: finish }),
};

export const CHAT_FORMAT: ResponseFormat = {
  idPrefix: 'chatcmpl', object: 'chat.completion', chunkObject: 'chat.completion.chunk',
  echo: () => false,
  logprobs: (body) => {
    const on = boolField(body, 'logprobs');
    const top = body['top_logprobs'] === undefined || body['top_logprobs'] === null ? undefined : intField(body, 'top_logprobs', 0, 0, 20);
    if (top !== undefined && on !== true) throw new BadRequest('"top_logprobs" needs "logprobs": true');
    return on === true ? top ?? 0 : undefined;
  },
  logprobsObject: chatLogprobs,
  choice: (text, finish) => ({ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }),
  delta: (text, finish, first) => ({ index: 0, delta: first ? { role: 'assistant', content: text } : text === '' ? {} : { content: text }, finish_reason: finish }),
};

/** A chat request's "messages": a non-empty list of {role, content}; content a string or a list of text parts. */
export function chatMessages(v: unknown): ChatMessage[] {
  const bad = () => new BadRequest('"messages" must be a non-empty array of {"role": string, "content": string or [{"type": "text", "text": string}]}');
  if (!Array.isArray(v) || v.length === 0) throw bad();
  return v.map((m) => {
    if (!m || typeof m !== 'object') throw bad();
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || role.length === 0) throw bad();
    if (typeof content === 'string') return { role, content };
    if (Array.isArray(content) && content.every((p) => p && typeof p === 'object' && (p as { type?: unknown }).type === 'text' && typeof (p as { text?: unknown }).text === 'string'))
      return { role, content: content.map((p) => (p as { text: string }).text).join('') };
    throw bad();
  });
}

/** The request's "stop": absent, a string, or up to MAX_STOPS non-empty strings. */
export function stopStrings(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > MAX_STOPS || !list.every((x) => typeof x === 'string' && x.length > 0))
    throw new BadRequest(`"stop" must be a non-empty string or up to ${MAX_STOPS} of them`);
  return list as string[];
}

export function intField(body: Record<string, unknown>, name: string, fallback: number, min: number, max = Infinity): number {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max)
    throw new BadRequest(`"${name}" must be an integer ${max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`}`);
  return v as number;
}

/** A boolean field, or undefined where absent or null. */
export function boolField(body: Record<string, unknown>, name: string): boolean | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new BadRequest(`"${name}" must be true or false`);
  return v;
}

export function numField(body: Record<string, unknown>, name: string, fallback: number, ok: (v: number) => boolean, what: string): number {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !ok(v)) throw new BadRequest(`"${name}" must be ${what}`);
  return v;
}

/** A completion request's options (both routes), checked. */
export interface CompletionOptions {
  /** The prompt's text (and, with logprobs, its tokens') before the completion. */
  echo: boolean;
  maxNew: number;
  temperature: number;
  topP: number;
  seed: number;
  /** Samples per prompt. */
  n: number;
  stream: boolean;
  /** End at the tokenizer's EOS id (stop_at_eos, or vLLM's ignore_eos negated). */
  stopAtEos: boolean;
  /** More ids that end a sequence without being emitted (vLLM's stop_token_ids). */
  stopTokenIds: number[];
  stops: string[];
  /** Alternatives reported per token, or undefined for no logprobs. */
  logprobs: number | undefined;
}

export function completionOptions(body: Record<string, unknown>, format: ResponseFormat, defaultMaxTokens: number, vocabSize: number): CompletionOptions {
  const echo = format.echo(body);
  const ids = body['stop_token_ids'];
  if (ids !== undefined && ids !== null && !(Array.isArray(ids) && ids.every((t) => Number.isInteger(t) && t >= 0 && t < vocabSize)))
    throw new BadRequest(`"stop_token_ids" must be a list of token ids below ${vocabSize}`);
  return {
    echo, maxNew: intField(body, 'max_tokens', defaultMaxTokens, echo ? 0 : 1),
    temperature: numField(body, 'temperature', 1, (v) => v >= 0, 'a number ≥ 0'),
    topP: numField(body, 'top_p', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    seed: intField(body, 'seed', 0, 0), n: intField(body, 'n', 1, 1, MAX_CHOICES),
    stream: boolField(body, 'stream') === true, stopAtEos: boolField(body, 'stop_at_eos') !== false && boolField(body, 'ignore_eos') !== true,
    stopTokenIds: Array.isArray(ids) ? (ids as number[]) : [], stops: stopStrings(body['stop']),
    logprobs: format.logprobs(body),
  };
}
