// logprobs.ts — the log-probabilities a completions server reports for each new token: the
// log-softmax of the model's raw logits (before temperature and top-p, as vLLM and the OpenAI API
// report them) at the sampled id, and the `top` most likely ids; and their two response shapes
// (/v1/completions' parallel lists, /v1/chat/completions' content entries).

export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The most likely ids, most likely first (ties: lower id first). */
  top: { id: number; logprob: number }[];
}

/**
 * The prompt's own tokens as echo reports them: the first with no logprob, token t with the
 * log-softmax of row t − 1 of `logits` ([T, vocab], the model's prediction of it) and its alternatives.
 */
export function promptTokens(logits: Float32Array, prompt: readonly number[], top: number,
  text: (prev: number | undefined, id: number) => string): ReportedToken[] {
  const V = logits.length / prompt.length, out: ReportedToken[] = [];
  let offset = 0;
  prompt.forEach((id, t) => {
    const prev = t > 0 ? prompt[t - 1] : undefined;
    const lp = t > 0 ? tokenLogprob(logits.subarray((t - 1) * V, t * V), id, top) : null;
    const r = reportedToken(lp, id, offset, (tok) => text(prev, tok));
    offset += r.text.length;
    out.push(r);
  });
  return out;
}

/** Token `id` (and its alternatives) reported at `offset`, each's text from `text`. */
export function reportedToken(lp: TokenLogprob | null, id: number, offset: number, text: (id: number) => string): ReportedToken {
  return { lp, text: text(id), topText: lp ? lp.top.map((x) => text(x.id)) : [], offset };
}

/** log-softmax of `logits` (in float64) at `id`, and the `top` best ids. */
export function tokenLogprob(logits: Float32Array, id: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  const best: number[] = [];  // the `top` largest, kept sorted (top ≤ 20: insertion is cheap)
  for (let i = 0; i < logits.length && top > 0; i++) {
    const v = logits[i]!;
    if (best.length === top && v <= logits[best[top - 1]!]!) continue;
    let j = Math.min(best.length, top - 1);
    while (j > 0 && logits[best[j - 1]!]! < v) j--;
    best.splice(j, 0, i);
    if (best.length > top) best.pop();
  }
  return { id, logprob: logits[id]! - logZ, top: best.map((i) => ({ id: i, logprob: logits[i]! - logZ })) };
}

/** A reported token: its logprobs and the texts it and its alternatives add (decodeToken after the previous id). */
export interface ReportedToken {
  /** null for a prompt's first token (echo), which nothing predicts. */
  lp: TokenLogprob | null;
  text: string;
  topText: string[];
  /** Where its text starts in the completion. */
  offset: number;
}

/** /v1/completions' `logprobs` object. */
export function completionLogprobs(tokens: readonly ReportedToken[]): object {
  return {
    tokens: tokens.map((t) => t.text),
    token_logprobs: tokens.map((t) => t.lp?.logprob ?? null),
    top_logprobs: tokens.map((t) => (t.lp ? Object.fromEntries(t.lp.top.map((x, i) => [t.topText[i]!, x.logprob])) : null)),
    text_offset: tokens.map((t) => t.offset),
  };
}

/** /v1/chat/completions' `logprobs` object. */
export function chatLogprobs(tokens: readonly ReportedToken[]): object {
  const bytes = (s: string) => [...Buffer.from(s, 'utf8')];
  return {
    content: tokens.map((t) => ({ token: t.text, logprob: t.lp?.logprob ?? null, bytes: bytes(t.text),
      top_logprobs: (t.lp?.top ?? []).map((x, i) => ({ token: t.topText[i]!, logprob: x.logprob, bytes: bytes(t.topText[i]!) })) })),
  };
}
