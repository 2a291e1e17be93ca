// `intscale eval <model> --text FILE`: perplexity of a text file with the reference chunking
// (src/eval/perplexity.ts), on the CPU engine or the GPU engine (--device; --mode picks how a GPU
// runs the projections). Progress per chunk on stderr; --json prints {"ppl","tokens","nll","ctx"}.
// A non-finite perplexity (NaN/Inf logits) is an error, exit 1.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';
import { parseIntOption } from './options.ts';
import { progress } from '../core/progress.ts';
import { perplexity } from '../eval/perplexity.ts';
import { assertFinitePerplexity } from '../eval/finite-result.ts';
import { loadModelWithProgress } from '../model/load.ts';
import { loadHfTokenizer } from '../io/tokenizer.ts';
import { readModelConfig } from '../io/validate-model.ts';
import { gpuPerplexity, loadOnGpu, openGpu } from '../eval/gpu-eval.ts';
import { parseMode } from '../core/modes.ts';
import { chooseDevice } from './device.ts';
import * as path from 'node:path';

export function register(program: Command): void {
  program
    .command('eval')
    .description('perplexity of a text file (CPU or GPU engine)')
    .argument('<model>', 'model directory or llama2.c .bin')
    .requiredOption('--text <file>', 'UTF-8 text file')
    .option('--ctx <n>', 'positions per chunk, BOS included', '512')
    .option('--max-tokens <n>', 'score only the first N tokens')
    .option('--json', 'print one JSON object on stdout')
    .option('--device <d>', 'cpu or cuda (default: cuda when a GPU can run the model)')
    .option('--mode <m>', 'GPU: fp16, w4a16, w4a8-fs, w4a8-is or w4a8-pc (default: the checkpoint\'s)')
    .option('--group <n>', 'GPU: group size when quantizing an fp16 model for --mode', '128')
    .action((modelPath: string, opts: { text: string; ctx: string; maxTokens?: string; json?: boolean; device?: string; mode?: string; group: string }) => {
      const ctx = parseIntOption('--ctx', opts.ctx, 2);
      const maxTokens = opts.maxTokens === undefined ? undefined : parseIntOption('--max-tokens', opts.maxTokens, 1);
      let text: string;
      try {
        text = fs.readFileSync(opts.text, 'utf8');
      } catch (e) {
        fail(opts.text, `cannot read the text file: ${fsProblem(e) ?? String(e)}`);
      }
      const device = chooseDevice(opts.device, modelPath);
      if (device === 'cpu' && opts.mode !== undefined) fail('--mode', 'is a GPU option (on the CPU a checkpoint runs as quantized)');
      const mode = opts.mode === undefined ? undefined : parseMode(opts.mode);
      const group = parseIntOption('--group', opts.group, 1);
      const cpuModel = device === 'cpu' ? loadModelWithProgress(modelPath) : undefined;
      const config = cpuModel?.config ?? readModelConfig(modelPath).config;
      const tokenizer = cpuModel?.tokenizer ?? loadHfTokenizer(path.join(modelPath, 'tokenizer.json'), path.join(modelPath, 'tokenizer_config.json'));
      if (ctx > config.maxSeq) fail('--ctx', `${ctx} exceeds the model's context of ${config.maxSeq}`);
      const ids = tokenizer.encode(text, { addBos: false });
      if (ids.length === 0) fail(opts.text, 'no tokens in the text');
      const total = Math.min(ids.length, maxTokens ?? ids.length);
      const bar = progress(`eval ${total} tokens`, total);
      let last = 0;
      const common = {
        ctx, ...(maxTokens !== undefined ? { maxTokens } : {}),
        onProgress: (scored: number) => { bar.tick(scored - last); last = scored; },
      };
      const bosId = tokenizer.bosId ?? config.bosId ?? 1;
      let r;
      if (cpuModel) {
        r = perplexity(cpuModel, ids, { ...common, bosId });
      } else {
        const gpu = openGpu();
        const model = loadOnGpu(gpu, modelPath, { ...(mode ? { mode } : {}), group });
        try {
          r = gpuPerplexity(gpu, model, ids, { ...common, bosId });
        } finally {
          model.free();
        }
      }
      bar.done();
      assertFinitePerplexity(modelPath, r.ppl);
      if (opts.json) process.stdout.write(`${JSON.stringify({ ppl: r.ppl, tokens: r.tokens, nll: r.nll, ctx })}\n`);
      else process.stdout.write(`perplexity ${r.ppl.toFixed(4)} over ${r.tokens} tokens (ctx ${ctx}, mean NLL ${(r.nll / r.tokens).toFixed(6)})\n`);
    });
}
