// `intscale quantize <model-dir> --out DIR ...`: W4 by RTN, GPTQ or AWQ (optionally SmoothQuant,
// calibrated on --calib text) + integer scales → quantized checkpoint, with progress per decoder
// layer (calibration) and per linear, and the per-layer integer-scale report at the end. SIGINT/SIGTERM
// remove the temporary output (exit 130/143); a leftover of a killed run is cleaned up or reported.
import type { Command } from 'commander';
import { progress } from '../core/progress.ts';
import { writeQuantizedModel } from '../quant/quantize-model.ts';
import { parseAmplifier } from '../quant/integer-scale.ts';
import { formatIsReportTable, precisionWarnings } from '../quant/is-report.ts';
import { parseIntOption } from './options.ts';
import { calibOptionsOf, parseFloatOption, registerCalibOptions } from './calib-options.ts';
import { isMoeModel, openGptqDevice } from './calib-device.ts';

export function register(program: Command): void {
  const cmd = program
    .command('quantize')
    .description('quantize a Hugging Face Llama model dir to W4 (+ integer scales) into a new dir')
    .argument('<model-dir>', 'source model directory (config.json + safetensors)')
    .requiredOption('--out <dir>', 'output directory (must not exist)')
    .option('--method <m>', 'quantization method: rtn, gptq or awq', 'rtn')
    .option('--wbits <n>', 'weight bits (4)', '4')
    .option('--group <n>', 'group size: 32, 64, 128, 256 or -1 (per channel)', '128')
    .option('--abits <n>', 'activation bits at run time: 8 or 16', '8')
    .option('--scale <s>', 'scales used at run time: int or float', 'int')
    .option('--amplifier <a>', 'integer-scale amplifier: auto (per channel), layer, or a fixed shift K', 'auto')
    .option('--clip', 'rtn: search a clip ratio per group minimizing its squared error; gptq: per group, the clip ratio minimizing its output error on the calibration inputs', false)
    .option('--json', 'print the per-layer report as JSON');
  registerCalibOptions(cmd)
    .option('--no-act-order', 'GPTQ: natural column order (default: act-order, i.e. columns by decreasing Hessian diagonal, with static groups)')
    .option('--percdamp <f>', 'GPTQ: relative Hessian dampening', '0.01')
    .option('--block-size <n>', 'GPTQ: columns per lazy-update block', '128')
    .option('--awq-scales', "GPTQ: search AWQ's per-input-channel scales first (folded like AWQ's), then run GPTQ on the scaled weights", false)
    .action(async (modelDir: string, o: Record<string, string | boolean>) => {
      const opts = {
        method: String(o['method']),
        wbits: parseIntOption('--wbits', String(o['wbits'])),
        group: parseIntOption('--group', String(o['group'])),
        abits: parseIntOption('--abits', String(o['abits'])),
        scale: String(o['scale']) as 'int' | 'float',
        amplifier: parseAmplifier(String(o['amplifier'])),
        clip: o['clip'] === true,
        ...calibOptionsOf(o),
        actOrder: o['actOrder'] !== false,
        percdamp: parseFloatOption('--percdamp', String(o['percdamp'])),
        blockSize: parseIntOption('--block-size', String(o['blockSize']), 1),
        awqScales: o['awqScales'] === true,
      };
      let layers: ReturnType<typeof progress> | undefined;
      let bar: ReturnType<typeof progress> | undefined;
      const gptqDevice = openGptqDevice(String(o['calibDevice']), { usesGptq: opts.method === 'gptq' && opts.calib !== undefined, clip: opts.clip, blockSize: opts.blockSize, moe: isMoeModel(modelDir) });
      const reports = await writeQuantizedModel(modelDir, String(o['out']), { ...opts, ...(gptqDevice ? { gptqDevice } : {}) }, (_r, i, total) => {
        if (layers) return; // calibrated: each decoder layer's linears are written as it finishes, one bar for both
        bar ??= progress('quantize', total);
        bar.tick();
        if (i === total - 1) bar.done();
      }, (note) => process.stderr.write(`note: ${note}\n`), (note, total) => {
        layers ??= progress(`${opts.method} calibration (decoder layers)`, total);
        const idle = (note.expertRows ?? []).flatMap((rows, e) => (rows === 0 ? [e] : []));
        if (idle.length > 0) process.stderr.write(`note: layer ${note.layer}: no calibration row reached expert(s) ${idle.join(', ')}: quantized by RTN\n`);
        layers.tick();
        if (note.layer === total - 1) layers.done();
      }).finally(() => gptqDevice?.dispose());
      for (const w of precisionWarnings(reports)) process.stderr.write(`warning: ${w}\n`);
      if (o['json']) process.stdout.write(JSON.stringify({ layers: reports }, null, 1) + '\n');
      else process.stdout.write(`${formatIsReportTable(reports)}\nwrote ${String(o['out'])} (${reports.length} quantized linears)\n`);
    });
}
