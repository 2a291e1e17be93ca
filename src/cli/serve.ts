// `intscale serve <model>`: an OpenAI-compatible completions server (POST /v1/completions,
// /v1/chat/completions with the model's chat template or --chat-template's, GET /v1/models,
// /health) over continuous batching on the CPU or GPU engine (src/serve/server.ts):
// --max-batch sequences decode together, each request joins the batch at the next step. Runs until
// a signal; one line on stderr when it listens.
import * as path from 'node:path';
import type { Command } from 'commander';
import { chooseDevice } from './device.ts';
import { addDeviceOptions, type DeviceCliOptions } from './generation-options.ts';
import { parseIntOption } from './options.ts';
import { openStepModel } from './step-model.ts';
import { CompletionServer } from '../serve/server.ts';
import { loadChatTemplate } from '../serve/chat-template.ts';
import { fail } from '../core/errors.ts';

interface ServeCliOptions extends DeviceCliOptions {
  host: string; port: string; maxBatch: string; maxRows: string; maxSeq?: string; maxTokens: string; chatTemplate?: string; apiKey?: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('serve')
    .description('serve OpenAI-style /v1/completions with continuous batching (CPU or GPU engine)')
    .argument('<model>', 'model directory or llama2.c .bin')
    .option('--host <h>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', '8000')
    .option('--max-batch <n>', 'sequences decoded together (KV-cache slots)', '8')
    .option('--max-rows <n>', 'tokens per engine step (decode rows + prefill chunks)', '512')
    .option('--max-seq <n>', 'positions per sequence: prompt + new tokens (default: the model\'s context, at most 4096)')
    .option('--max-tokens <n>', 'new tokens of a request that gives no max_tokens', '16')
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1/ routes (default: $INTSCALE_API_KEY, else none)')
    .option('--chat-template <file>', 'Jinja chat template for /v1/chat/completions (default: tokenizer_config.json\'s chat_template)');
  addDeviceOptions(cmd).action(async (modelPath: string, opts: ServeCliOptions) => {
    const port = parseIntOption('--port', opts.port, 0), slots = parseIntOption('--max-batch', opts.maxBatch, 1);
    const maxRows = parseIntOption('--max-rows', opts.maxRows, slots), defaultMaxTokens = parseIntOption('--max-tokens', opts.maxTokens, 1);
    const apiKey = opts.apiKey ?? (process.env['INTSCALE_API_KEY'] || undefined);
    if (apiKey !== undefined && apiKey.length === 0) fail('--api-key', 'an empty key would let anyone in: give a non-empty key or none');
    const device = chooseDevice(opts.device, modelPath);
    // (a llama2.c .bin has no tokenizer_config.json beside it: loadChatTemplate finds none)
    const chatTemplate = loadChatTemplate(path.join(modelPath, 'tokenizer_config.json'), opts.chatTemplate);
    const open = openStepModel(modelPath, device, opts, slots, maxRows);
    const maxSeq = opts.maxSeq === undefined ? 4096 : parseIntOption('--max-seq', opts.maxSeq, 1);
    const backend = open.backend(Math.min(maxSeq, open.context));
    const server = new CompletionServer(backend, open.tokenizer, { model: path.basename(path.resolve(modelPath)), defaultMaxTokens,
      ...(chatTemplate ? { chatTemplate } : {}), ...(apiKey ? { apiKey } : {}) });
    const bound = await server.listen(port, opts.host);
    process.stderr.write(`intscale serve: http://${opts.host}:${bound}/v1/completions${chatTemplate ? ' and /v1/chat/completions' : ''} ` +
      `(${open.label}, ${slots} slots, ${backend.maxSeq} positions each, ${maxRows} tokens a step)\n`);
  });
}
