// Streaming quantize of a LLaMA-2-7B-shaped checkpoint (dim 4096, hidden 11008, vocab 32000,
// fp16) on this machine: writes a synthetic source with --layers L decoder layers (default 32;
// random weights, one random block reused, which does not change the work), runs
// writeQuantizedModel (g128 + integer scales, shards streamed) and prints the time, the time per
// decoder layer and the peak RSS (Linux: the kernel's high-water mark VmHWM, reset after the source is
// written; elsewhere sampled every 200 ms and after each layer, a lower bound). INTSCALE_MEMTRACE=1 adds
// a line per pipeline stage (src/core/mem-trace.ts).
// --method rtn (default) or gptq / awq, with --calib FILE (default the shared docs-calib.txt),
// --calib-samples N (8) and --calib-len T (128): the calibrated methods tokenize with the
// docs-llama-30m tokenizer (4096 ids, inside the 32000-row embedding), copied into the source;
// --awq-scales (gptq) and --smooth ALPHA (any method) as in `intscale quantize`.
// Run: node --import tsx src/report/stream-7b.ts [--layers L] [--dir D] [--method gptq] [--calib-samples N] [--calib-len T] [--awq-scales] [--smooth A]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rssNow } from '../core/mem-trace.ts';
import { Rng } from '../core/rng.ts';
import { f32ToF16 } from '../core/dtype.ts';
import { ShardStreamWriter } from '../io/safetensors-stream.ts';
import { writeQuantizedModel, type QuantizeOptions } from '../quant/quantize-model.ts';

const SHARED = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../shared');
const TOKENIZER_DIR = path.join(SHARED, 'models/docs-llama-30m');

const D = 4096, H = 11008, V = 32000;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

function writeSource(dir: string, layers: number): void {
  const rng = new Rng(7);
  const block = new Uint16Array(H * D);
  for (let i = 0; i < block.length; i++) block[i] = f32ToF16(rng.normal() * 0.02);
  const take = (n: number) => block.slice(0, n);
  const ones = new Uint16Array(D).fill(f32ToF16(1));
  const w = new ShardStreamWriter(dir, { format: 'pt' });
  const embed = new Uint16Array(V * D);
  for (let o = 0; o < embed.length; o += block.length) embed.set(block.subarray(0, Math.min(block.length, embed.length - o)), o);
  w.add([{ name: 'model.embed_tokens.weight', dtype: 'F16', shape: [V, D], data: embed }]);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    const t = (n: string, shape: [number, number]) => ({ name: `${p}.${n}.weight`, dtype: 'F16' as const, shape, data: take(shape[0] * shape[1]) });
    w.add([t('self_attn.q_proj', [D, D]), t('self_attn.k_proj', [D, D]), t('self_attn.v_proj', [D, D]), t('self_attn.o_proj', [D, D]),
      t('mlp.gate_proj', [H, D]), t('mlp.up_proj', [H, D]), t('mlp.down_proj', [D, H]),
      { name: `${p}.input_layernorm.weight`, dtype: 'F16', shape: [D], data: ones }, { name: `${p}.post_attention_layernorm.weight`, dtype: 'F16', shape: [D], data: ones }]);
  }
  w.add([{ name: 'model.norm.weight', dtype: 'F16', shape: [D], data: ones }, { name: 'lm_head.weight', dtype: 'F16', shape: [V, D], data: embed }]);
  w.finish();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: D, intermediate_size: H, num_hidden_layers: layers,
    num_attention_heads: 32, num_key_value_heads: 32, vocab_size: V, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
  }));
}

const layers = Number(arg('--layers', '32'));
const method = arg('--method', 'rtn');
const smooth = process.argv.includes('--smooth') ? Number(arg('--smooth', '')) : undefined;
const awqScales = process.argv.includes('--awq-scales');
const calibrated = method !== 'rtn' || smooth !== undefined;
const opts: QuantizeOptions = {
  method, wbits: 4, group: 128, abits: 8, scale: 'int', amplifier: 'auto', clip: false,
  ...(method === 'gptq' ? { actOrder: true } : {}), // the CLI's default
  ...(smooth !== undefined ? { smooth } : {}), ...(awqScales ? { awqScales } : {}),
  ...(calibrated ? { calib: { file: arg('--calib', path.join(SHARED, 'data/calib/docs-calib.txt')), samples: Number(arg('--calib-samples', '8')), len: Number(arg('--calib-len', '128')), seed: 0 } } : {}),
};
const root = arg('--dir', fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-7b-')));
const src = path.join(root, 'src'), out = path.join(root, 'q');
let peak = 0;
const sample = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 200);
try {
  let t = performance.now();
  writeSource(src, layers);
  if (calibrated) for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(TOKENIZER_DIR, f), path.join(src, f));
  process.stderr.write(`source (${layers} layers) written in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  peak = 0;
  try { fs.writeFileSync('/proc/self/clear_refs', '5'); } catch { /* not Linux */ } // the source's buffers are not the run's
  t = performance.now();
  const gib = () => (process.memoryUsage().rss / 2 ** 30).toFixed(2);
  const layerSeconds: number[] = [];
  await writeQuantizedModel(src, out, opts,
    (_r, i, total) => { if (!calibrated && (i + 1) % 7 === 0) process.stderr.write(`  layer ${(i + 1) / 7}/${total / 7} at ${((performance.now() - t) / 1000).toFixed(1)} s, rss ${gib()} GiB\n`); },
    undefined,
    (note, total) => {
      layerSeconds.push(note.seconds);
      peak = Math.max(peak, process.memoryUsage().rss); // the sampler cannot run while a layer computes
      process.stderr.write(`  ${method} layer ${note.layer + 1}/${total}: ${note.seconds.toFixed(1)} s, at ${((performance.now() - t) / 1000).toFixed(1)} s, rss ${gib()} GiB, peak ${(peak / 2 ** 30).toFixed(2)} GiB\n`);
    });
  const s = (performance.now() - t) / 1000;
  peak = Math.max(peak, process.memoryUsage().rss, process.env['INTSCALE_MEMTRACE'] === '1' ? 0 : rssNow().hwm);
  const result = { method, ...(smooth !== undefined ? { smooth } : {}), ...(awqScales ? { awq_scales: true } : {}), ...(opts.calib ? { calib_samples: opts.calib.samples, calib_len: opts.calib.len } : {}), layers, seconds: Number(s.toFixed(1)), seconds_per_layer: Number((s / layers).toFixed(2)), peak_rss_gib: Number((peak / 2 ** 30).toFixed(2)), extrapolated_32_layers_s: Number(((s / layers) * 32).toFixed(0)),
    ...(calibrated ? { calib_seconds_per_layer: layerSeconds.map((x) => Number(x.toFixed(1))) } : {}) };
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  clearInterval(sample);
  fs.rmSync(root, { recursive: true, force: true });
}
