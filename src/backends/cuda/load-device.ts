// Building a DeviceModel: from a Hugging Face directory (fp16/bf16/fp32 safetensors, or an intscale
// quantized checkpoint), streamed tensor by tensor to the GPU (upload.ts), q|k|v and gate|up fused
// at load time (a Mixtral expert's w1|w3 likewise; its router stays fp16), W4 modes quantized on the GPU right after each fp16 linear arrives (so the fp16
// weights are never all resident); or from an architecture preset with seeded random fp16 weights
// made on the GPU (shape-true speed models: nothing read from disk).
import { fail } from '../../core/errors.ts';
import type { Mode } from '../../core/modes.ts';
import { readQuantizedLayer, type QuantizationConfig } from '../../io/qformat.ts';
import type { TensorSource } from '../../io/safetensors.ts';
import { openValidatedModelDir } from '../../io/validate-model.ts';
import type { DeviceBuffer, Gpu, Stream } from '../../gpu/runtime.ts';
import type { ModelConfig } from '../../model/config.ts';
import { packInt4 } from '../../quant/pack-int4.ts';
import { freeLinear, type DeviceLinear, type LinearRole } from './device-linear.ts';
import {
  checkW4Shapes, finishW4, quantizeLinearOnGpu, type DeviceLayer, type DeviceModel,
} from './device-model.ts';
import { ATTN_HEAD_DIMS, MOE_MAX_EXPERTS, RMS_MAX_DIM, SWIGLU_MAX_HIDDEN, type EngineKernels } from './kernels.ts';
import type { FeedForward } from '../../model/forward.ts';
import { TensorUploader } from './upload.ts';

export interface DeviceLoadOptions {
  /** Default: fp16 for an fp16 checkpoint, the checkpoint's own mode for an intscale one. */
  mode?: Mode;
  /** Group size when quantizing an fp16 checkpoint on the GPU (default 128). */
  group?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Fail unless the GPU engine can run this architecture. */
export function checkGpuConfig(c: ModelConfig, where: string): void {
  if (c.arch === 'mixtral' && !(c.nExperts !== undefined && c.nExperts <= MOE_MAX_EXPERTS)) fail(where, `${c.nExperts} experts exceed the GPU router's ${MOE_MAX_EXPERTS}`);
  if (!(ATTN_HEAD_DIMS as readonly number[]).includes(c.headDim)) fail(where, `head size ${c.headDim} is not supported by the GPU attention kernels (64 or 128)`);
  if (c.dim % 16 || c.hiddenDim % 16) fail(where, `hidden sizes ${c.dim}/${c.hiddenDim} must be multiples of 16 on the GPU`);
  if (c.dim > RMS_MAX_DIM || c.hiddenDim > SWIGLU_MAX_HIDDEN) fail(where, `hidden sizes ${c.dim}/${c.hiddenDim} exceed the GPU row kernels' ${RMS_MAX_DIM}/${SWIGLU_MAX_HIDDEN}`);
  if (c.nHeads % c.nKvHeads) fail(where, `${c.nHeads} heads are not a multiple of ${c.nKvHeads} KV heads`);
}

class Builder {
  readonly owned: DeviceBuffer[] = [];
  readonly linears: DeviceLinear[] = [];
  constructor(readonly gpu: Gpu, readonly k: EngineKernels, readonly s: Stream) {}
  alloc(bytes: number): DeviceBuffer {
    const b = this.gpu.alloc(bytes);
    this.owned.push(b);
    return b;
  }
  fp16Linear(weight: DeviceBuffer, N: number, K: number, role: LinearRole): DeviceLinear {
    return { kind: 'fp16', weight, outFeatures: N, inFeatures: K, role };
  }
  keep(l: DeviceLinear): DeviceLinear {
    this.linears.push(l);
    return l;
  }
  freeAll(): void {
    for (const l of this.linears) freeLinear(l);
    for (const b of this.owned) if (!b.freed) b.free();
  }
}

/** Load a Hugging Face model directory onto the GPU. */
export function loadDeviceModel(gpu: Gpu, k: EngineKernels, s: Stream, dir: string, opts: DeviceLoadOptions = {}): DeviceModel {
  // config and tensors checked against each other before anything is loaded (the CPU loader's check)
  const { config, quant: qconfig, src } = openValidatedModelDir(dir);
  try {
    checkGpuConfig(config, dir);
  } catch (e) {
    src.close();
    throw e;
  }
  const mode = opts.mode ?? (qconfig ? (qconfig.act_bits === 16 ? 'w4a16' : qconfig.scale === 'int' ? 'w4a8-is' : 'w4a8-fs') : 'fp16');
  const group = qconfig ? qconfig.group_size : opts.group ?? 128;
  try {
    if (qconfig && mode === 'fp16') fail(dir, 'is an intscale W4 checkpoint: it cannot run in fp16 mode');
    if (qconfig && mode === 'w4a8-pc' && qconfig.group_size !== -1) fail(dir, `runs w4a8-pc only when quantized per channel (group_size -1, got ${qconfig.group_size})`);
    if (mode !== 'fp16') checkW4Shapes(config, mode === 'w4a8-pc' ? -1 : group);
  } catch (e) {
    src.close();
    throw e;
  }
  const b = new Builder(gpu, k, s);
  const up = new TensorUploader(gpu, k, s);
  try {
    const { dim, hiddenDim: H, headDim: hd, nHeads, nKvHeads, vocabSize: V } = config;
    const qDim = nHeads * hd, kvDim = nKvHeads * hd;
    const tensor = (name: string, shape: number[]) => {
      if (!src.has(name)) fail(dir, `missing tensor ${name}`);
      const info = src.info(name);
      if (info.shape.join(',') !== shape.join(',')) fail(dir, `tensor ${name} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
      return info;
    };
    const f16 = (name: string, shape: number[]) => {
      const t = tensor(name, shape);
      const buf = b.alloc(shape.reduce((a, c) => a * c, 1) * 2);
      up.uploadF16(t, buf, 0);
      return buf;
    };
    /** Rows of several [n_i, K] tensors stacked into one fp16 [Σ n_i, K] linear (then quantized if asked). */
    const fused = (names: string[], ns: number[], K: number, role: LinearRole, label: string): DeviceLinear => {
      const N = ns.reduce((a, c) => a + c, 0);
      if (qconfig) return b.keep({ ...quantizedFused(src, up, b, names, ns, K, qconfig, mode), role });
      const weight = gpu.alloc(N * K * 2);
      let row = 0;
      names.forEach((n, i) => { up.uploadF16(tensor(`${n}.weight`, [ns[i]!, K]), weight, row * K * 2); row += ns[i]!; });
      up.finish();
      const lin = b.fp16Linear(weight, N, K, role);
      if (mode === 'fp16') return b.keep(lin);
      try {
        return b.keep({ ...quantizeLinearOnGpu(gpu, k, s, lin, mode, group, label), role });
      } finally {
        weight.free();
      }
    };
    const embed = f16('model.embed_tokens.weight', [V, dim]);
    const layers: DeviceLayer[] = [];
    for (let l = 0; l < config.nLayers; l++) {
      const pre = `model.layers.${l}.`;
      const attn = ['q_proj', 'k_proj', 'v_proj'].map((p) => `${pre}self_attn.${p}`);
      const mlp = (gate: string, up: string, down: string, label: string) => ({
        gateUp: fused([`${pre}${gate}`, `${pre}${up}`], [H, H], dim, 'gateUp', `${pre}${label}.gate_up`),
        down: fused([`${pre}${down}`], [dim], H, 'down', `${pre}${down}`),
      });
      const attnNorm = f16(`${pre}input_layernorm.weight`, [dim]);
      const qkv = fused(attn, [qDim, kvDim, kvDim], dim, 'qkv', `${pre}self_attn.qkv`);
      const o = fused([`${pre}self_attn.o_proj`], [dim], qDim, 'o', `${pre}self_attn.o_proj`);
      const ffnNorm = f16(`${pre}post_attention_layernorm.weight`, [dim]);
      const moe = (E: number): FeedForward<DeviceLinear> => ({
        kind: 'moe', topK: config.nExpertsPerTok!,
        router: b.fp16Linear(f16(`${pre}block_sparse_moe.gate.weight`, [E, dim]), E, dim, 'router'),  // fp16 in every mode
        experts: Array.from({ length: E }, (_, e) => { const x = `block_sparse_moe.experts.${e}`; return mlp(`${x}.w1`, `${x}.w3`, `${x}.w2`, x); }),
      });
      const ffn = config.arch === 'mixtral' ? moe(config.nExperts!) : { kind: 'swiglu' as const, ...mlp('mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'mlp') };
      const layer: DeviceLayer = { attnNorm, qkv, o, ffnNorm, ffn };
      if (config.qkvBias) {
        const bias = b.alloc((qDim + 2 * kvDim) * 2);
        up.uploadF16(tensor(`${pre}self_attn.q_proj.bias`, [qDim]), bias, 0);
        up.uploadF16(tensor(`${pre}self_attn.k_proj.bias`, [kvDim]), bias, qDim * 2);
        up.uploadF16(tensor(`${pre}self_attn.v_proj.bias`, [kvDim]), bias, (qDim + kvDim) * 2);
        layer.qkvBias = bias;
      }
      layers.push(layer);
      opts.onProgress?.(l + 1, config.nLayers);
    }
    const finalNorm = f16('model.norm.weight', [dim]);
    const tied = config.tieEmbeddings && !src.has('lm_head.weight');
    const head = b.fp16Linear(tied ? embed : f16('lm_head.weight', [V, dim]), V, dim, 'head');
    up.finish();
    return { config, mode, embed, layers, finalNorm, head, free: () => b.freeAll() };
  } catch (e) {
    up.finish();
    b.freeAll();
    throw e;
  } finally {
    up.destroy();
    src.close();
  }
}

/**
 * A fused W4 linear from an intscale checkpoint: each part read and validated exactly as the CPU
 * loader does (readQuantizedLayer: shapes, dtypes, the int32 bound), its canonical tensors stacked
 * by rows on the device, then repacked there.
 */
function quantizedFused(src: TensorSource, up: TensorUploader, b: Builder, names: string[], ns: number[], K: number,
  qconfig: QuantizationConfig, mode: Mode): DeviceLinear {
  if (mode === 'fp16') fail('load', 'unreachable');
  const group = qconfig.group_size;
  const N = ns.reduce((a, c) => a + c, 0), G = group === -1 ? K : group, groups = K / G;
  const gpu = b.gpu;
  const canon = gpu.alloc(N * K / 2), scales = gpu.alloc(N * groups * 2);
  const iscales = mode === 'w4a8-is' ? gpu.alloc(N * groups * 4) : undefined, shift = mode === 'w4a8-is' ? gpu.alloc(N) : undefined;
  let row = 0;
  const parts = () => names.forEach((name, i) => {
    const layer = readQuantizedLayer(src, name, qconfig);
    if (layer.qw.outFeatures !== ns[i] || layer.qw.inFeatures !== K)
      fail(name, `quantized ${name} is ${layer.qw.outFeatures}×${layer.qw.inFeatures}, expected ${ns[i]}×${K}`);
    const n = ns[i]!;
    up.uploadBytes(packInt4(layer.qw.q, n, K), canon, row * K / 2);
    const s16 = new Uint16Array(src.read(`${name}.scales`) as Uint16Array);
    up.uploadBytes(new Uint8Array(s16.buffer), scales, row * groups * 2);
    if (iscales && shift) {
      up.uploadBytes(new Uint8Array(layer.is.iscales.buffer, layer.is.iscales.byteOffset, layer.is.iscales.byteLength), iscales, row * groups * 4);
      up.uploadBytes(new Uint8Array(layer.is.shift.buffer, layer.is.shift.byteOffset, layer.is.shift.byteLength), shift, row);
    }
    row += n;
  });
  try {
    parts();
    up.finish();
  } catch (e) {
    up.finish();
    for (const buf of [canon, scales, iscales, shift]) buf?.free();
    throw e;
  }
  return finishW4(gpu, b.k, b.s, mode, N, K, G, canon, scales, iscales && shift ? { iscales, shift } : undefined);
}

/** Seeded random fp16 weights of `config`'s shapes, made on the GPU (linears ~N(0, 0.02²), norms ~1). */
export function randomDeviceModel(gpu: Gpu, k: EngineKernels, s: Stream, config: ModelConfig, seed = 1,
  onProgress?: (done: number, total: number) => void): DeviceModel {
  checkGpuConfig(config, 'random model');
  const b = new Builder(gpu, k, s);
  let n = 0;
  const rand = (elems: number, mean: number, std: number) => {
    const buf = b.alloc(elems * 2);
    k.randomF16(buf, elems, seed * 1000003 + n++, mean, std, s);
    return buf;
  };
  try {
    const { dim, hiddenDim: H, headDim: hd, nHeads, nKvHeads, vocabSize: V } = config;
    const qkvN = (nHeads + 2 * nKvHeads) * hd, qDim = nHeads * hd;
    const lin = (N: number, K: number, role: LinearRole) => b.fp16Linear(rand(N * K, 0, 0.02), N, K, role);
    const embed = rand(V * dim, 0, 1);
    const layers: DeviceLayer[] = [];
    for (let l = 0; l < config.nLayers; l++) {
      const mlp = () => ({ gateUp: lin(2 * H, dim, 'gateUp'), down: lin(dim, H, 'down') });
      // a Mixtral router ~N(0, 0.02²) gives logits of order 1 on RMSNorm outputs: tokens spread over the experts
      const ffn: FeedForward<DeviceLinear> = config.arch === 'mixtral'
        ? { kind: 'moe', router: lin(config.nExperts!, dim, 'router'), topK: config.nExpertsPerTok!, experts: Array.from({ length: config.nExperts! }, mlp) }
        : { kind: 'swiglu', ...mlp() };
      layers.push({ attnNorm: rand(dim, 1, 0.02), qkv: lin(qkvN, dim, 'qkv'), o: lin(dim, qDim, 'o'), ffnNorm: rand(dim, 1, 0.02), ffn });
      onProgress?.(l + 1, config.nLayers);
    }
    const finalNorm = rand(dim, 1, 0.02);
    const head = lin(V, dim, 'head');
    s.sync();
    return { config, mode: 'fp16', embed, layers, finalNorm, head, free: () => b.freeAll() };
  } catch (e) {
    b.freeAll();
    throw e;
  }
}
