// `intscale generate <model> --prompt TEXT`: stream a continuation to stdout as tokens come, then
// "N tokens, X tokens/s" on stderr. Greedy when --temperature is 0; an empty prompt starts from BOS.
// Only the continuation is printed unless --echo. Several --prompt options generate as one batch
// (src/eval/generate.ts): each text is printed after generation under a header line "[i] <prompt>",
// then the aggregate tokens/s of the batch on stderr. --device cuda runs the GPU engine (prefill and
// CUDA-graph decode, sampling on the GPU) and reports prefill and decode tokens/s.
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { parseIntOption } from './options.ts';
import { addDeviceOptions, addSamplingOptions, parseSampling, type DeviceCliOptions, type SamplingCliOptions } from './generation-options.ts';
import { generate, generateBatch, type GenerateOptions } from '../eval/generate.ts';
import { loadModelWithProgress, type LoadedModel } from '../model/load.ts';
import { TextStreamer, type Tokenizer } from '../io/tokenizer.ts';
import { readModelConfig } from '../io/validate-model.ts';
import { hfTokenizerOf, loadGpuModel } from './step-model.ts';
import { CudaEngine } from '../backends/cuda/engine.ts';
import { generateOnGpu } from '../backends/cuda/run.ts';
import { chooseDevice } from './device.ts';
import type { BatchGenerateResult } from '../eval/generate.ts';

interface GenerateCliOptions extends SamplingCliOptions, DeviceCliOptions {
  prompt: string[]; echo?: boolean; graph: boolean; maxBatch?: string; maxSeq?: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate text on the CPU or GPU engine (several --prompt: one batch)')
    .argument('<model>', 'model directory or llama2.c .bin')
    .option('--prompt <text>', 'prompt text; repeat for a batch of prompts', (v: string, all: string[]) => [...all, v], [] as string[]);
  addDeviceOptions(addSamplingOptions(cmd, 'sampling seed (prompt i of a batch uses seed + i)'))
    .option('--echo', 'print the prompt before the continuation')
    .option('--no-graph', 'GPU: launch every decode kernel instead of replaying the CUDA graph')
    .option('--max-batch <n>', 'GPU: KV-cache sequence slots allocated up front (default: the number of prompts)')
    .option('--max-seq <n>', 'GPU: positions per slot (default: the longest prompt + --max-new)')
    .action((modelPath: string, opts: GenerateCliOptions) => {
      const { maxNew, temperature, topP, seed } = parseSampling(opts);
      const texts = opts.prompt.length ? opts.prompt : [''];
      const device = chooseDevice(opts.device, modelPath);
      if (device === 'cpu' && opts.mode !== undefined) fail('--mode', 'is a GPU option (on the CPU a checkpoint runs as quantized)');
      if (device === 'cuda') {
        generateGpu(modelPath, texts, opts, { maxNew, temperature, topP, seed });
        return;
      }
      const model = loadModelWithProgress(modelPath);
      const tok = model.tokenizer;
      const prompts = texts.map((t) => tok.encode(t, { addBos: true }));
      if (prompts.some((p) => p.length === 0)) fail(modelPath, 'empty prompt and the tokenizer has no BOS token to start from');
      const sampling: GenerateOptions = {
        maxNew, temperature, topP, seed,
        ...(opts.stopAtEos && tok.eosId !== undefined ? { stopIds: [tok.eosId] } : {}),
      };
      if (prompts.length === 1) generateOne(model, prompts[0]!, sampling, opts.echo ?? false);
      else generateMany(model, texts, prompts, sampling, opts.echo ?? false);
    });
}

/** One prompt: stream the text as tokens come. */
function generateOne(model: LoadedModel, prompt: number[], sampling: GenerateOptions, echo: boolean): void {
  const tok = model.tokenizer;
  const streamer = new TextStreamer(tok, echo ? [] : prompt);
  if (echo) for (const id of prompt) { const s = streamer.push(id); if (s) process.stdout.write(s); }
  const r = generate(model, prompt, {
    ...sampling,
    onToken: (id) => { const s = streamer.push(id); if (s) process.stdout.write(s); },
  });
  const rest = streamer.flush();
  if (rest) process.stdout.write(rest);
  process.stdout.write('\n');
  // like llama2.c: the rate after the prompt's prefill (which is reported on its own)
  const rate = r.decodeSeconds > 0 ? r.ids.length / r.decodeSeconds : 0;
  process.stderr.write(`${r.ids.length} tokens, ${rate.toFixed(1)} tokens/s ` +
    `(prompt ${prompt.length} tokens in ${(r.prefillSeconds * 1000).toFixed(0)} ms)\n`);
}

/** Several prompts: one batch; each text under a "[i] <prompt>" header once all are done. */
function generateMany(model: LoadedModel, texts: string[], prompts: number[][], sampling: GenerateOptions, echo: boolean): void {
  const tok = model.tokenizer;
  const r = generateBatch(model, prompts, sampling);
  r.ids.forEach((ids, i) => {
    process.stdout.write(`[${i}] ${texts[i]!.replace(/\s+/g, ' ')}\n${continuation(tok, prompts[i]!, ids, echo)}\n`);
  });
  const tokens = r.ids.reduce((n, ids) => n + ids.length, 0);
  const promptTokens = prompts.reduce((n, p) => n + p.length, 0);
  // the aggregate rate of the batch after the prompts' prefill (as for one prompt)
  const rate = r.decodeSeconds > 0 ? tokens / r.decodeSeconds : 0;
  process.stderr.write(`${tokens} tokens in ${prompts.length} sequences, ${rate.toFixed(1)} tokens/s ` +
    `(prompts ${promptTokens} tokens in ${(r.prefillSeconds * 1000).toFixed(0)} ms)\n`);
}

/** The new ids as text (decoded in the prompt's context), after the prompt with echo. */
export function continuation(tok: Tokenizer, prompt: number[], ids: number[], echo: boolean): string {
  const streamer = new TextStreamer(tok, echo ? [] : prompt);
  let text = '';
  for (const id of echo ? [...prompt, ...ids] : ids) text += streamer.push(id);
  return text + streamer.flush();
}

/** The GPU engine: all prompts in one batch; the text of one prompt streams as tokens come. */
function generateGpu(modelPath: string, texts: string[], opts: GenerateCliOptions, sampling: GenerateOptions): void {
  const config = readModelConfig(modelPath).config;
  const tok = hfTokenizerOf(modelPath);
  const prompts = texts.map((t) => tok.encode(t, { addBos: true }));
  if (prompts.some((p) => p.length === 0)) fail(modelPath, 'empty prompt and the tokenizer has no BOS token to start from');
  const maxNew = sampling.maxNew!;
  const need = Math.max(...prompts.map((p) => p.length)) + maxNew;
  if (need > config.maxSeq) fail('--max-new', `prompt + ${maxNew} new tokens exceed the model's context of ${config.maxSeq}`);
  const maxSeq = opts.maxSeq === undefined ? need : parseIntOption('--max-seq', opts.maxSeq, need);
  const maxBatch = opts.maxBatch === undefined ? prompts.length : parseIntOption('--max-batch', opts.maxBatch, prompts.length);
  const { gpu, model } = loadGpuModel(modelPath, opts);
  const engine = new CudaEngine(gpu.gpu, model, { maxBatch, maxSeq }, gpu.kernels);
  try {
    const stops = opts.stopAtEos && tok.eosId !== undefined ? { stopIds: [tok.eosId] } : {};
    let r: BatchGenerateResult;
    if (prompts.length === 1) {
      const streamer = new TextStreamer(tok, opts.echo ? [] : prompts[0]!);
      if (opts.echo) for (const id of prompts[0]!) { const s = streamer.push(id); if (s) process.stdout.write(s); }
      r = generateOnGpu(engine, prompts, { ...sampling, ...stops, graph: opts.graph, onToken: (_b, id) => { const s = streamer.push(id); if (s) process.stdout.write(s); } });
      process.stdout.write(`${streamer.flush()}\n`);
    } else {
      r = generateOnGpu(engine, prompts, { ...sampling, ...stops, graph: opts.graph });
      r.ids.forEach((ids, i) => process.stdout.write(`[${i}] ${texts[i]!.replace(/\s+/g, ' ')}\n${continuation(tok, prompts[i]!, ids, opts.echo ?? false)}\n`));
    }
    const tokens = r.ids.reduce((n, ids) => n + ids.length, 0), promptTokens = prompts.reduce((n, p) => n + p.length, 0);
    const decoded = tokens - r.ids.filter((ids) => ids.length > 0).length;  // the first token of each comes from the prefill
    process.stderr.write(`${tokens} tokens in ${prompts.length} sequence${prompts.length > 1 ? 's' : ''} on ${gpu.gpu.name} (${model.mode}): ` +
      `prefill ${(promptTokens / r.prefillSeconds).toFixed(1)} tokens/s (${promptTokens} tokens in ${(r.prefillSeconds * 1000).toFixed(1)} ms), ` +
      `decode ${r.decodeSeconds > 0 ? (decoded / r.decodeSeconds).toFixed(1) : '0'} tokens/s\n`);
  } finally {
    engine.destroy();
    model.free();
  }
}
