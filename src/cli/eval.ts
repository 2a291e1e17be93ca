// `intscale eval <model> --text FILE`: perplexity of a text file with the reference chunking
// (src/eval/perplexity.ts). Progress per chunk on stderr; --json prints {"ppl","tokens","nll","ctx"}.
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

export function register(program: Command): void {
  program
    .command('eval')
    .description('perplexity of a text file on the CPU engine')
    .argument('<model>', 'model directory or llama2.c .bin')
    .requiredOption('--text <file>', 'UTF-8 text file')
    .option('--ctx <n>', 'positions per chunk, BOS included', '512')
    .option('--max-tokens <n>', 'score only the first N tokens')
    .option('--json', 'print one JSON object on stdout')
    .action((modelPath: string, opts: { text: string; ctx: string; maxTokens?: string; json?: boolean }) => {
      const ctx = parseIntOption('--ctx', opts.ctx, 2);
      const maxTokens = opts.maxTokens === undefined ? undefined : parseIntOption('--max-tokens', opts.maxTokens, 1);
      let text: string;
      try {
        text = fs.readFileSync(opts.text, 'utf8');
      } catch (e) {
        fail(opts.text, `cannot read the text file: ${fsProblem(e) ?? String(e)}`);
      }
      const model = loadModelWithProgress(modelPath);
      if (ctx > model.config.maxSeq) fail('--ctx', `${ctx} exceeds the model's context of ${model.config.maxSeq}`);
      const ids = model.tokenizer.encode(text, { addBos: false });
      if (ids.length === 0) fail(opts.text, 'no tokens in the text');
      const total = Math.min(ids.length, maxTokens ?? ids.length);
      const bar = progress(`eval ${total} tokens`, total);
      let last = 0;
      const r = perplexity(model, ids, {
        ctx, ...(maxTokens !== undefined ? { maxTokens } : {}), ...(model.tokenizer.bosId !== undefined ? { bosId: model.tokenizer.bosId } : {}),
        onProgress: (scored) => { bar.tick(scored - last); last = scored; },
      });
      bar.done();
      assertFinitePerplexity(modelPath, r.ppl);
      if (opts.json) process.stdout.write(`${JSON.stringify({ ppl: r.ppl, tokens: r.tokens, nll: r.nll, ctx })}\n`);
      else process.stdout.write(`perplexity ${r.ppl.toFixed(4)} over ${r.tokens} tokens (ctx ${ctx}, mean NLL ${(r.nll / r.tokens).toFixed(6)})\n`);
    });
}
