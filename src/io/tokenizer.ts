// Tokenizers behind one interface: Hugging Face tokenizer.json (via @huggingface/tokenizers) and
// llama2.c's tokenizer.bin (sentencepiece-style BPE merging by score, exactly as run.c does).
// Plus a streaming decoder that turns ids into text chunks as they are generated.
import * as fs from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { fail } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';

export interface Tokenizer {
  /** Token ids of `text`; a BOS id first when addBos (and the tokenizer has one). */
  encode(text: string, opts?: { addBos?: boolean }): number[];
  /** Text of the ids (special tokens dropped). */
  decode(ids: number[]): string;
  /** Text that token `id` adds after token `prev` (for simple streaming; see TextStreamer). */
  decodeToken(prev: number, id: number): string;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly vocabSize: number;
}

// ── Hugging Face tokenizer.json ─────────────────────────────────────────────────────────────

export function loadHfTokenizer(tokenizerJsonPath: string, configJsonPath?: string): Tokenizer {
  const readJson = (p: string): object => {
    let text: string;
    try {
      text = fs.readFileSync(p, 'utf8');
    } catch (e) {
      fail(p, `cannot read the file: ${fsProblem(e) ?? String(e)}`);
    }
    try {
      return JSON.parse(text) as object;
    } catch (e) {
      fail(p, `not valid JSON (${(e as Error).message})`);
    }
  };
  const tokJson = readJson(tokenizerJsonPath);
  const cfgJson = configJsonPath && fs.existsSync(configJsonPath) ? readJson(configJsonPath) : {};
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(tokJson, cfgJson);
  } catch (e) {
    fail(tokenizerJsonPath, `cannot build the tokenizer (${(e as Error).message})`);
  }
  const cfg = cfgJson as Record<string, unknown>;
  const idOf = (v: unknown): number | undefined => {
    const content = typeof v === 'string' ? v : typeof v === 'object' && v !== null ? (v as { content?: unknown }).content : undefined;
    return typeof content === 'string' ? tok.token_to_id(content) : undefined;
  };
  const bosId = idOf(cfg.bos_token) ?? tok.token_to_id('<s>');
  const eosId = idOf(cfg.eos_token) ?? tok.token_to_id('</s>');
  const vocabSize = tok.get_vocab(true).size;

  return {
    bosId, eosId, vocabSize,
    encode(text, opts = {}) {
      const ids = tok.encode(text, { add_special_tokens: false }).ids;
      // BOS added here rather than by the post-processor, so every tokenizer.json behaves the same
      return opts.addBos && bosId !== undefined ? [bosId, ...ids] : ids;
    },
    decode(ids) {
      return ids.length === 0 ? '' : tok.decode(ids, { skip_special_tokens: true });
    },
    decodeToken(prev, id) {
      const both = tok.decode([prev, id], { skip_special_tokens: true });
      const first = tok.decode([prev], { skip_special_tokens: true });
      return both.startsWith(first) ? both.slice(first.length) : tok.decode([id], { skip_special_tokens: true });
    },
  };
}

// ── llama2.c tokenizer.bin ──────────────────────────────────────────────────────────────────

/** llama2.c's tokenizer: int32 max_token_length, then per token float32 score, int32 length, bytes. */
export function loadLlama2cTokenizer(file: string, vocabSize: number): Tokenizer {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    fail(file, `cannot read the file: ${fsProblem(e) ?? String(e)}`);
  }
  const pieces: Buffer[] = [];
  const scores = new Float32Array(vocabSize);
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (off + 8 > buf.length) fail(file, `truncated llama2.c tokenizer: ${i} of ${vocabSize} tokens`);
    scores[i] = buf.readFloatLE(off);
    const len = buf.readInt32LE(off + 4);
    off += 8;
    if (len < 0 || off + len > buf.length) fail(file, `truncated llama2.c tokenizer at token ${i}`);
    pieces.push(buf.subarray(off, off + len));
    off += len;
  }
  return new Llama2cTokenizer(pieces, scores);
}

const BOS = 1, EOS = 2;

class Llama2cTokenizer implements Tokenizer {
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly vocabSize: number;
  private readonly lookup = new Map<string, number>(); // piece as latin1 (byte-exact) → id
  private readonly pieceText: string[]; // id → piece as latin1
  private readonly bytePieces: (Buffer | undefined)[]; // id → the single raw byte of a <0xXX> token

  constructor(private readonly pieces: Buffer[], private readonly scores: Float32Array) {
    this.vocabSize = pieces.length;
    this.pieceText = pieces.map((p) => p.toString('latin1'));
    // first occurrence wins, like run.c's bsearch over a stable-sorted vocab (pieces are unique)
    pieces.forEach((p, id) => { if (!this.lookup.has(p.toString('latin1'))) this.lookup.set(p.toString('latin1'), id); });
    this.bytePieces = pieces.map((p) => {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p.toString('latin1'));
      return m ? Buffer.from([parseInt(m[1]!, 16)]) : undefined;
    });
  }

  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    const tokens: number[] = [];
    const bytes = Buffer.from(text, 'utf8');
    // sentencepiece's dummy prefix: a space before non-empty text (it takes part in merges)
    if (bytes.length > 0) {
      const dummy = this.lookup.get(' ');
      if (dummy !== undefined) tokens.push(dummy);
    }
    // one token per UTF-8 code point, or its bytes (+3: ids 3..258 are <0x00>..<0xFF>)
    for (let i = 0; i < bytes.length;) {
      let len = 1;
      const b = bytes[i]!;
      if (b >= 0xc0) while (i + len < bytes.length && len < 4 && (bytes[i + len]! & 0xc0) === 0x80) len++;
      const cp = bytes.subarray(i, i + len);
      const id = this.lookup.get(cp.toString('latin1'));
      if (id !== undefined) tokens.push(id);
      else for (const byte of cp) tokens.push(byte + 3);
      i += len;
    }
    const merged = this.mergeByScore(tokens);
    return opts.addBos ? [BOS, ...merged] : merged;
  }

  /**
   * run.c's merge rule — repeatedly merge the adjacent pair whose concatenation is the
   * best-scoring token (the leftmost on ties) — in O(n log n): a linked list of tokens and a
   * max-heap of candidate merges, stale candidates skipped when popped.
   */
  private mergeByScore(seq: number[]): number[] {
    const n = seq.length;
    if (n < 2) return seq;
    const id = Int32Array.from(seq);
    const next = new Int32Array(n), prev = new Int32Array(n);
    for (let i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
    // candidate: [score, left index, left id, right id]; best = higher score, then smaller index
    const heap: [number, number, number, number][] = [];
    const better = (a: [number, number, number, number], b: [number, number, number, number]) => a[0] > b[0] || (a[0] === b[0] && a[1] < b[1]);
    const push = (c: [number, number, number, number]) => {
      heap.push(c);
      for (let i = heap.length - 1; i > 0;) {
        const parent = (i - 1) >> 1;
        if (!better(heap[i]!, heap[parent]!)) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    };
    const pop = (): [number, number, number, number] => {
      const top = heap[0]!, last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        for (let i = 0; ;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < heap.length && better(heap[l]!, heap[m]!)) m = l;
          if (r < heap.length && better(heap[r]!, heap[m]!)) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m]!, heap[i]!];
          i = m;
        }
      }
      return top;
    };
    const consider = (left: number) => {
      const right = next[left]!;
      if (left < 0 || right < 0) return;
      const merged = this.lookup.get(this.pieceText[id[left]!]! + this.pieceText[id[right]!]!);
      if (merged !== undefined && this.scores[merged]! > -1e10) push([this.scores[merged]!, left, id[left]!, id[right]!]);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    const alive = new Uint8Array(n).fill(1);
    while (heap.length > 0) {
      const [, left, leftId, rightId] = pop();
      const right = next[left]!;
      // stale: the left token was merged away or changed, or its neighbour changed
      if (!alive[left] || right < 0 || id[left] !== leftId || id[right] !== rightId) continue;
      id[left] = this.lookup.get(this.pieceText[leftId]! + this.pieceText[rightId]!)!;
      alive[right] = 0;
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      consider(prev[left]!);
      consider(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(id[i]!);
    return out;
  }

  /** The raw bytes token `id` prints after `prev` (run.c's decode()). */
  pieceBytes(prev: number, id: number): Buffer {
    const byte = this.bytePieces[id];
    if (byte) return byte;
    let p = this.pieces[id] ?? Buffer.alloc(0);
    if (prev === BOS && p[0] === 0x20) p = p.subarray(1);
    return p;
  }

  decode(ids: number[]): string {
    const parts: Buffer[] = [];
    let prev = -1;
    for (const id of ids) {
      if (id !== BOS && id !== EOS) parts.push(this.pieceBytes(prev, id));
      prev = id;
    }
    return Buffer.concat(parts).toString('utf8');
  }

  decodeToken(prev: number, id: number): string {
    if (id === BOS || id === EOS) return '';
    return this.pieceBytes(prev, id).toString('utf8');
  }
}

// ── streaming ───────────────────────────────────────────────────────────────────────────────

/**
 * Turns a growing id sequence into text chunks: decodes the ids seen so far and emits only the new
 * suffix, holding back while the text ends in an incomplete UTF-8 sequence (U+FFFD).
 */
export class TextStreamer {
  private ids: number[] = [];
  private emitted = '';
  constructor(private readonly tokenizer: Tokenizer, promptIds: number[] = []) {
    this.ids = [...promptIds];
    this.emitted = tokenizer.decode(this.ids);
  }
  /** Add a token; returns the text to print now (possibly empty). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids);
    if (text.endsWith('\uFFFD') || !text.startsWith(this.emitted)) return '';
    const chunk = text.slice(this.emitted.length);
    this.emitted = text;
    return chunk;
  }
  /** Whatever is left (e.g. a trailing replacement character). */
  flush(): string {
    const text = this.tokenizer.decode(this.ids);
    const chunk = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return chunk;
  }
}
