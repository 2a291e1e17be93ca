// `intscale generate <model> --prompt TEXT`: stream a continuation to stdout as tokens come, then
// "N tokens, X tokens/s" on stderr. Greedy when --temperature is 0; an empty prompt starts from BOS.
// Only the continuation is printed unless --echo.
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { generate } from '../eval/generate.ts';
import { loadModelWithProgress } from '../io/model-dir.ts';
import { TextStreamer } from '../io/tokenizer.ts';

export function register(program: Command): void {
  program
    .command('generate')
    .description('generate text on the CPU engine')
    .argument('<model>', 'model directory or llama2.c .bin')
    .option('--prompt <text>', 'prompt text', '')
    .option('--max-new <n>', 'new tokens', '128')
    .option('--temperature <t>', '0 = greedy', '0')
    .option('--top-p <p>', 'nucleus sampling mass', '0.9')
    .option('--seed <s>', 'sampling seed', '0')
    .option('--stop-at-eos', 'stop at the end-of-sequence token')
    .option('--echo', 'print the prompt before the continuation')
    .action((modelPath: string, opts: { prompt: string; maxNew: string; temperature: string; topP: string; seed: string; stopAtEos?: boolean; echo?: boolean }) => {
      const maxNew = Number(opts.maxNew), temperature = Number(opts.temperature), topP = Number(opts.topP), seed = Number(opts.seed);
      if (!Number.isInteger(maxNew) || maxNew < 1) fail('--max-new', `must be a positive integer (got ${opts.maxNew})`);
      if (!(temperature >= 0)) fail('--temperature', `must be a number ≥ 0 (got ${opts.temperature})`);
      if (!(topP > 0 && topP <= 1)) fail('--top-p', `must be in (0, 1] (got ${opts.topP})`);
      if (!Number.isInteger(seed)) fail('--seed', `must be an integer (got ${opts.seed})`);
      const model = loadModelWithProgress(modelPath);
      const tok = model.tokenizer;
      const prompt = tok.encode(opts.prompt, { addBos: true });
      if (prompt.length === 0) fail(modelPath, 'empty prompt and the tokenizer has no BOS token to start from');
      const streamer = new TextStreamer(tok, opts.echo ? [] : prompt);
      if (opts.echo) for (const id of prompt) { const s = streamer.push(id); if (s) process.stdout.write(s); }
      const r = generate(model, prompt, {
        maxNew, temperature, topP, seed,
        ...(opts.stopAtEos && tok.eosId !== undefined ? { stopIds: [tok.eosId] } : {}),
        onToken: (id) => { const s = streamer.push(id); if (s) process.stdout.write(s); },
      });
      const rest = streamer.flush();
      if (rest) process.stdout.write(rest);
      process.stdout.write('\n');
      // like llama2.c: the rate after the prompt's prefill (which is reported on its own)
      const rate = r.decodeSeconds > 0 ? r.ids.length / r.decodeSeconds : 0;
      process.stderr.write(`${r.ids.length} tokens, ${rate.toFixed(1)} tokens/s ` +
        `(prompt ${prompt.length} tokens in ${(r.prefillSeconds * 1000).toFixed(0)} ms)\n`);
    });
}
