// llama2.c legacy checkpoints (run.c's format): a header of 7 int32 (dim, hidden_dim, n_layers,
// n_heads, n_kv_heads, vocab_size — negative when the classifier is not shared —, seq_len) then fp32
// weights: embedding, rms_att[L], wq[L], wk[L], wv[L], wo[L], rms_ffn[L], w1[L], w2[L], w3[L],
// rms_final, freq_cis_real, freq_cis_imag (unused), and wcls when unshared. Matrices are [out, in].
import * as fs from 'node:fs';
import { fail } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';
import { assertFiniteTensor } from '../core/finite.ts';
import type { ModelConfig } from '../model/config.ts';
import { denseLinear, type LayerWeights, type ModelWeights } from '../model/weights.ts';

const HEADER_BYTES = 28;

export interface Llama2cCheckpoint {
  config: ModelConfig;
  weights: ModelWeights;
}

/** Parse only the header of `file` (used to recognise a checkpoint). */
export function readLlama2cHeader(file: string, buf?: Buffer): ModelConfig {
  const head = buf ?? readHead(file);
  if (head.length < HEADER_BYTES) fail(file, 'too short for a llama2.c checkpoint header');
  const h = [0, 1, 2, 3, 4, 5, 6].map((i) => head.readInt32LE(i * 4));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, maxSeq] = h as [number, number, number, number, number, number, number];
  const vocabSize = Math.abs(vocabRaw);
  const sane = (v: number, max: number) => v > 0 && v <= max;
  if (!sane(dim, 65536) || !sane(hiddenDim, 1 << 20) || !sane(nLayers, 1024) || !sane(nHeads, 1024) ||
      !sane(nKvHeads, nHeads) || !sane(vocabSize, 1 << 22) || !sane(maxSeq, 1 << 22) || dim % nHeads !== 0 ||
      nHeads % nKvHeads !== 0 || (dim / nHeads) % 2 !== 0)
    fail(file, `not a llama2.c checkpoint (implausible header ${JSON.stringify(h)})`);
  return {
    arch: 'llama',
    dim, hiddenDim, nLayers, nHeads, nKvHeads,
    headDim: dim / nHeads,
    vocabSize,
    maxSeq,
    normEps: 1e-5,
    rope: { theta: 10000, layout: 'interleaved' },
    tieEmbeddings: vocabRaw > 0,
    qkvBias: false,
    bosId: 1,
    eosId: 2,
  };
}

/** Expected file size in bytes for a header. */
export function llama2cFileBytes(c: ModelConfig): number {
  const kvDim = c.nKvHeads * c.headDim;
  const perLayer = 2 * c.dim + c.dim * c.dim * 2 + 2 * kvDim * c.dim + 3 * c.dim * c.hiddenDim;
  const floats = c.vocabSize * c.dim + c.nLayers * perLayer + c.dim + c.maxSeq * c.headDim +
    (c.tieEmbeddings ? 0 : c.vocabSize * c.dim);
  return HEADER_BYTES + floats * 4;
}

/** Load a whole llama2.c checkpoint into dense fp32 weights. */
export function loadLlama2c(file: string): Llama2cCheckpoint {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    fail(file, `cannot read the file: ${fsProblem(e) ?? String(e)}`);
  }
  const config = readLlama2cHeader(file, buf);
  const expected = llama2cFileBytes(config);
  if (buf.length !== expected) fail(file, `llama2.c checkpoint should be ${expected} bytes for its header, is ${buf.length}`);
  const { dim, hiddenDim, nLayers, vocabSize, maxSeq, headDim } = config;
  const kvDim = config.nKvHeads * headDim;

  let offset = HEADER_BYTES;
  /** The next n floats, named `name` (a NaN/Inf among them is refused naming it), `cols` per row. */
  const take = (n: number, name: string, cols = n): Float32Array => {
    const a = new Float32Array(n);
    // copy out through a Buffer view (the file offset is not 4-byte aligned in general)
    Buffer.from(a.buffer).set(buf.subarray(offset, offset + n * 4));
    offset += n * 4;
    assertFiniteTensor(`${file}: ${name}`, a, cols);
    return a;
  };
  const perLayer = (n: number, name: string, cols: number): Float32Array[] => Array.from({ length: nLayers }, (_, l) => take(n, `${name}[${l}]`, cols));

  const embedding = take(vocabSize * dim, 'token_embedding_table', dim);
  const rmsAtt = perLayer(dim, 'rms_att_weight', dim);
  const wq = perLayer(dim * dim, 'wq', dim), wk = perLayer(kvDim * dim, 'wk', dim), wv = perLayer(kvDim * dim, 'wv', dim), wo = perLayer(dim * dim, 'wo', dim);
  const rmsFfn = perLayer(dim, 'rms_ffn_weight', dim);
  const w1 = perLayer(hiddenDim * dim, 'w1', dim), w2 = perLayer(dim * hiddenDim, 'w2', hiddenDim), w3 = perLayer(hiddenDim * dim, 'w3', dim);
  const finalNorm = take(dim, 'rms_final_weight');
  offset += maxSeq * headDim * 4; // freq_cis_real + freq_cis_imag (maxSeq × headDim/2 each): recomputed instead
  const wcls = config.tieEmbeddings ? embedding : take(vocabSize * dim, 'wcls', dim);

  const layers: LayerWeights[] = [];
  for (let l = 0; l < nLayers; l++) {
    layers.push({
      attnNorm: rmsAtt[l]!,
      wq: denseLinear(wq[l]!, dim, dim),
      wk: denseLinear(wk[l]!, kvDim, dim),
      wv: denseLinear(wv[l]!, kvDim, dim),
      wo: denseLinear(wo[l]!, dim, dim),
      ffnNorm: rmsFfn[l]!,
      w1: denseLinear(w1[l]!, hiddenDim, dim),
      w2: denseLinear(w2[l]!, dim, hiddenDim),
      w3: denseLinear(w3[l]!, hiddenDim, dim),
    });
  }
  return { config, weights: { embedding, layers, finalNorm, lmHead: denseLinear(wcls, vocabSize, dim) } };
}

function readHead(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(HEADER_BYTES);
    const n = fs.readSync(fd, b, 0, HEADER_BYTES, 0);
    return b.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}
