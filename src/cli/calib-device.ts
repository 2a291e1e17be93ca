// `--calib-device cpu|cuda|auto` (quantize, compare): where GPTQ's calibration runs (the layer forward, the Gram
// matrix, the factor, the column loop: src/gpu/gptq/). auto (the default) takes the GPU when one is
// usable and the options allow it, silently the CPU on a machine without one, and the CPU with a
// one-line note when a GPU is there but the options need the CPU (--clip, --block-size > 128);
// cuda refuses in one line instead of falling back. On the GPU the calibration's layer forward runs
// there too (src/gpu/calib/layer-ops.ts); AWQ / SmoothQuant statistics stay on the CPU.
import { fail } from '../core/errors.ts';
import type { ModelConfig } from '../model/config.ts';
import type { LayerOps } from '../quant/calib-ops.ts';
import type { DeviceGram, GptqDevice, GptqGroup, GptqGroupInput } from '../quant/gptq-device.ts';
import { Gpu } from '../gpu/runtime.ts';
import { detectModel } from '../io/model-dir.ts';
import { readModelConfig } from '../io/validate-model.ts';
import { GpuGptq, gpuGptqUnsupported } from '../gpu/gptq/solver.ts';

export const CALIB_DEVICES = ['cpu', 'cuda', 'auto'] as const;
export type CalibDevice = (typeof CALIB_DEVICES)[number];

export function parseCalibDevice(text: string): CalibDevice {
  if (!(CALIB_DEVICES as readonly string[]).includes(text)) fail('--calib-device', `expected cpu, cuda or auto, got '${text}'`);
  return text as CalibDevice;
}

/** The decision alone (no GPU touched unless `gpuUnavailable` is called): cpu or cuda, and a note for an auto fallback worth telling. */
export function chooseCalibDevice(option: CalibDevice, run: { usesGptq: boolean; clip?: boolean; blockSize?: number; moe?: boolean },
  gpuUnavailable: () => string | undefined): { device: 'cpu' | 'cuda'; note?: string } {
  if (option === 'cpu') return { device: 'cpu' };
  if (!run.usesGptq) {
    if (option === 'cuda') fail('--calib-device cuda', 'only GPTQ has a CUDA backend (use --method gptq, or --calib-device cpu)');
    return { device: 'cpu' };
  }
  const gpu = gpuUnavailable();
  if (gpu) {
    if (option === 'cuda') fail('--calib-device cuda', gpu);
    return { device: 'cpu' };
  }
  const why = gpuGptqUnsupported(run);
  if (why) {
    if (option === 'cuda') fail('--calib-device cuda', why);
    return { device: 'cpu', note: `GPTQ runs on the CPU: ${why}` };
  }
  return { device: 'cuda' };
}

/** Whether the model at `p` is a mixture of experts (an HF directory's config; a llama2.c file never is). */
export function isMoeModel(p: string): boolean {
  const kind = detectModel(p);
  return kind.format === 'hf' && readModelConfig(kind.dir).config.arch === 'mixtral';
}

/** The GPTQ device to hand the pipeline (undefined: the CPU), with the decision's note on stderr (quiet
 *  with INTSCALE_QUIET=1). The solver (NVRTC compile, cuBLASLt) is made on first use, so options are
 *  checked before any GPU work and a run that fails early prints only its error. */
export function openGptqDevice(option: string, run: { usesGptq: boolean; clip?: boolean; blockSize?: number; moe?: boolean }): GptqDevice | undefined {
  const choice = chooseCalibDevice(parseCalibDevice(option), run, () => Gpu.unavailableReason());
  if (choice.note) say(choice.note);
  return choice.device === 'cpu' ? undefined : new GpuGptqOnFirstUse();
}

function say(line: string): void {
  if (process.env['INTSCALE_QUIET'] !== '1') process.stderr.write(`note: ${line}\n`);
}

class GpuGptqOnFirstUse implements GptqDevice {
  readonly label = 'cuda';
  private solver: GpuGptq | undefined;
  private get gpu(): GpuGptq {
    if (!this.solver) {
      this.solver = new GpuGptq();
      say(`GPTQ's Hessian, factor and column loop run on ${this.solver.label}, and the layer forward`);
    }
    return this.solver;
  }
  gram(K: number): DeviceGram { return this.gpu.gram(K); }
  beginGroup(input: GptqGroupInput, K: number, opts: { percdamp?: number; actOrder?: boolean; name?: string }): GptqGroup { return this.gpu.beginGroup(input, K, opts); }
  layerOps(c: ModelConfig): LayerOps { return this.gpu.layerOps(c); }
  dispose(): void { this.solver?.dispose(); }
}
