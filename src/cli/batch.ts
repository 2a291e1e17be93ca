// `intscale batch <model> --prompts FILE --out FILE.jsonl`: generate for many prompts with
// continuous batching (src/serve/): --max-batch sequences share the engine, each step decodes every
// running sequence and prefills waiting prompts in chunks, and a finished sequence's slot goes to
// the next prompt at once. One JSON line per prompt, in input order: {"index", "prompt",
// "completion", "new_tokens", "finish"}; written under a temporary name and renamed when complete
// (removed on failure or a signal). Progress over prompts; a summary line on stderr.
import fs from 'node:fs';
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { withFsErrors } from '../core/fs-errors.ts';
import { removeOnInterrupt } from '../core/interrupt.ts';
import { progress } from '../core/progress.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { generateContinuous, type ContinuousResult, type StepBackend } from '../serve/generate-continuous.ts';
import { openStepModel } from './step-model.ts';
import { readPromptsFile } from '../serve/prompts-file.ts';
import { chooseDevice } from './device.ts';
import { continuation } from './generate.ts';
import { addDeviceOptions, addSamplingOptions, parseSampling, type DeviceCliOptions, type SamplingCliOptions } from './generation-options.ts';
import { checkNewFileTarget, parseIntOption } from './options.ts';

interface BatchCliOptions extends SamplingCliOptions, DeviceCliOptions {
  prompts: string; out: string; force?: boolean; maxBatch: string; maxRows: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('batch')
    .description('generate for many prompts with continuous batching (CPU or GPU engine), one JSON line per prompt')
    .argument('<model>', 'model directory or llama2.c .bin')
    .requiredOption('--prompts <file>', 'one prompt per line, or .jsonl lines: "text" or {"prompt": "text"}')
    .requiredOption('--out <file>', 'JSON lines {index, prompt, completion, new_tokens, finish} (a new file)')
    .option('--force', 'let --out overwrite an existing file')
    .option('--max-batch <n>', 'sequences decoded together (KV-cache slots)', '8')
    .option('--max-rows <n>', 'tokens per engine step (decode rows + prefill chunks)', '512');
  addDeviceOptions(addSamplingOptions(cmd, 'sampling seed (prompt i uses seed + i: its output does not depend on the schedule)'))
    .action(async (modelPath: string, opts: BatchCliOptions) => {
      checkNewFileTarget('--out', opts.out, opts.force === true);
      const { maxNew, temperature, topP, seed } = parseSampling(opts);
      const maxBatch = parseIntOption('--max-batch', opts.maxBatch, 1), maxRows = parseIntOption('--max-rows', opts.maxRows, maxBatch);
      const texts = readPromptsFile(opts.prompts);
      const device = chooseDevice(opts.device, modelPath);
      const slots = Math.min(maxBatch, texts.length);  // (no KV cache for slots no prompt would use)
      const open = openStepModel(modelPath, device, opts, slots, maxRows);
      try {
        const prompts = texts.map((t) => open.tokenizer.encode(t, { addBos: true }));
        const empty = prompts.findIndex((p) => p.length === 0);
        if (empty >= 0) fail(opts.prompts, `prompt ${empty} is empty and the tokenizer has no BOS token to start from`);
        const longest = Math.max(...prompts.map((p) => p.length));
        const backend = open.backend(Math.min(open.context, longest + maxNew));
        const stopIds = opts.stopAtEos && open.tokenizer.eosId !== undefined ? [open.tokenizer.eosId] : [];
        await runToFile(opts.out, texts, prompts, open.tokenizer, backend, { maxNew, temperature, topP, seed, stopIds }, open.label);
      } finally {
        open.close();
      }
    });
}

/** Generate and write the JSON lines under a temporary name, renamed into place when all are done. */
async function runToFile(out: string, texts: string[], prompts: number[][], tok: Tokenizer, backend: StepBackend,
  sampling: { maxNew: number; temperature: number; topP: number; seed: number; stopIds: number[] }, label: string): Promise<void> {
  const tmp = removeOnInterrupt(`${out}.tmp-${process.pid}`);
  const bar = progress('batch', prompts.length);
  let r: ContinuousResult;
  try {
    r = await generateContinuous(backend, prompts, { ...sampling, onFinish: () => bar.tick() });
    bar.done();
    const lines = r.ids.map((ids, i) => JSON.stringify({
      index: i, prompt: texts[i], completion: continuation(tok, prompts[i]!, ids, false), new_tokens: ids.length, finish: r.reasons[i],
    }));
    withFsErrors(out, () => {
      fs.writeFileSync(tmp.path, `${lines.join('\n')}\n`);
      fs.renameSync(tmp.path, out);
    }, 'write the results');
  } catch (e) {
    bar.done();
    fs.rmSync(tmp.path, { force: true });
    throw e;
  } finally {
    await tmp.release();
  }
  const tokens = r.ids.reduce((n, ids) => n + ids.length, 0);
  process.stderr.write(`${prompts.length} prompts, ${tokens} new tokens on ${label} in ${r.steps} steps ` +
    `(${(r.sequenceSteps / r.steps).toFixed(1)} sequences a step on ${backend.slots} slots), ` +
    `${r.seconds.toFixed(2)} s: ${r.seconds > 0 ? (tokens / r.seconds).toFixed(1) : '-'} new tokens/s\n`);
}
