// A model resident on the GPU: fp16 embeddings and norms, every projection a DeviceLinear (q|k|v
// and gate|up fused into one GEMM each; a Mixtral layer: an fp16 router and each expert's fused
// gate|up and down), in one of the engine's modes. Also the GPU quantizer that
// turns an fp16 linear into a W4 one (RTN per group, integer scales, repacking: weights.cu) and the
// tail shared with loading a quantized checkpoint (repack + scale layouts on the GPU).
import { fail } from '../../core/errors.ts';
import type { Mode, QuantMode } from '../../core/modes.ts';
import type { DeviceBuffer, Gpu, Stream } from '../../gpu/runtime.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { FeedForward } from '../../model/forward.ts';
import { freeLinear, type DeviceLinear } from './device-linear.ts';
import type { EngineKernels } from './kernels.ts';


export interface DeviceLayer {
  attnNorm: DeviceBuffer;
  qkv: DeviceLinear;
  /** fp16 [qkvDim] (Qwen2), or absent. */
  qkvBias?: DeviceBuffer;
  o: DeviceLinear;
  ffnNorm: DeviceBuffer;
  /** one SwiGLU MLP, or (Mixtral) a router (fp16 in every mode) and its experts */
  ffn: FeedForward<DeviceLinear>;
}

export interface DeviceModel {
  config: ModelConfig;
  mode: Mode;
  /** fp16 [vocab, dim] */
  embed: DeviceBuffer;
  layers: DeviceLayer[];
  finalNorm: DeviceBuffer;
  /** fp16 [vocab, dim]: the embedding's buffer when tied */
  head: DeviceLinear;
  /** Free what this model owns (a quantized variant shares embeddings, norms and head with its source). */
  free(): void;
}

/** Fail unless every linear shape fits the W4 kernels (K % 128, N % 8; K % group). */
export function checkW4Shapes(config: ModelConfig, group: number): void {
  const qkv = (config.nHeads + 2 * config.nKvHeads) * config.headDim;
  const shapes: [string, number, number][] = [['qkv', qkv, config.dim], ['o', config.dim, config.nHeads * config.headDim],
    ['gate_up', 2 * config.hiddenDim, config.dim], ['down', config.dim, config.hiddenDim]];
  for (const [name, n, k] of shapes) {
    if (k % 128 || n % 8) fail(name, `${n}×${k} does not fit the W4 GEMM kernels (K % 128 == 0, N % 8 == 0)`);
    if (group > 0 && k % group) fail(name, `K = ${k} is not a multiple of the group size ${group}`);
  }
}

/** Read one int32 the GPU wrote (syncs). */
function readFlag(gpu: Gpu, buf: DeviceBuffer): number {
  return gpu.download(buf, new Int32Array(1))[0]!;
}

/**
 * The W4 linear of `kind` from canonical packed int4 [N, K/2] and fp16 scales [N, K/G] on the
 * device (plus, for IS, int32 ŝ [N, K/G] and int8 shifts [N]): repack and transpose on the GPU.
 * Consumes (frees) canon, scales and iscales; the shift buffer becomes the linear's `chan` for IS.
 */
export function finishW4(gpu: Gpu, k: EngineKernels, s: Stream, kind: QuantMode, N: number, K: number, G: number,
  canon: DeviceBuffer, scales: DeviceBuffer, integer?: { iscales: DeviceBuffer; shift: DeviceBuffer }): DeviceLinear {
  const groups = K / G;
  const weight = gpu.alloc(N * K / 2);
  k.repack(canon, weight, N, K, kind === 'w4a16' ? 'w4a16' : 'w4a8', s);
  let gscales: DeviceBuffer | undefined, chan: DeviceBuffer | undefined;
  if (kind === 'w4a8-is') {
    if (!integer) fail('finishW4', 'IS needs integer scales');
    gscales = gpu.alloc(N * groups * 4);
    k.transposeScales(integer.iscales, gscales, N, groups, 'i32', s);
    chan = integer.shift;
  } else if (kind === 'w4a8-fs') {
    gscales = gpu.alloc(N * groups * 4);
    k.transposeScales(scales, gscales, N, groups, 'f16->f32', s);
  } else if (kind === 'w4a16') {
    gscales = gpu.alloc(N * groups * 2);
    k.transposeScales(scales, gscales, N, groups, 'f16', s);
  } else {
    if (groups !== 1) fail('finishW4', `per-channel W4A8 needs one group per row (got ${groups})`);
    chan = gpu.alloc(N * 4);
    k.transposeScales(scales, chan, N, 1, 'f16->f32', s);
  }
  s.sync();
  canon.free();
  scales.free();
  if (kind !== 'w4a8-is') integer?.shift.free();
  integer?.iscales.free();
  return { kind, weight, group: G, gscales, chan, outFeatures: N, inFeatures: K, role: 'w4' };
}

/** RTN-quantize an fp16 linear on the GPU (bit-exact with src/quant/rtn.ts and integer-scale.ts 'auto'). */
export function quantizeLinearOnGpu(gpu: Gpu, k: EngineKernels, s: Stream, w: DeviceLinear, kind: QuantMode, group: number,
  name: string): DeviceLinear {
  if (w.kind !== 'fp16') fail(name, 'only fp16 linears can be quantized');
  const N = w.outFeatures, K = w.inFeatures, G = kind === 'w4a8-pc' ? K : group, groups = K / G;
  const canon = gpu.alloc(N * K / 2), scales = gpu.alloc(N * groups * 2), bad = gpu.alloc(4);
  try {
    gpu.memset(bad, 0);
    k.rtnQuantize(w.weight, canon, scales, bad, N, K, G, s);
    s.sync();
    const row = readFlag(gpu, bad);
    if (row) fail(name, `non-finite weight in row ${row - 1}`);
    let integer: { iscales: DeviceBuffer; shift: DeviceBuffer } | undefined;
    if (kind === 'w4a8-is') {
      integer = { iscales: gpu.alloc(N * groups * 4), shift: gpu.alloc(N) };
      k.integerScales(scales, canon, integer.iscales, integer.shift, bad, N, K, G, s);
      s.sync();
      const r = readFlag(gpu, bad);
      if (r) {
        integer.iscales.free();
        integer.shift.free();
        fail(name, `output channel ${r - 1}: scales too large for int32 accumulation even with shift 0`);
      }
    }
    return { ...finishW4(gpu, k, s, kind, N, K, G, canon, scales, integer), role: w.role };
  } catch (e) {
    if (!canon.freed) canon.free();
    if (!scales.freed) scales.free();
    throw e;
  } finally {
    bad.free();
  }
}

/** A variant of an fp16 model in a W4 mode (quantized on the GPU); shares embeddings, norms, head. */
export function quantizeDeviceModel(gpu: Gpu, k: EngineKernels, s: Stream, src: DeviceModel, mode: QuantMode,
  group = 128, onLayer?: (done: number, total: number) => void): DeviceModel {
  if (src.mode !== 'fp16') fail('quantize', `the source model must be fp16 (is ${src.mode})`);
  checkW4Shapes(src.config, mode === 'w4a8-pc' ? -1 : group);
  if (mode === 'w4a16' && group !== 128) fail('--group', 'w4a16 runs group 128 on the GPU');
  if ((mode === 'w4a8-is' || mode === 'w4a8-fs') && ![32, 64, 128].includes(group)) fail('--group', `W4A8 runs groups 32, 64, 128 on the GPU (got ${group})`);
  const made: DeviceLinear[] = [];
  const q = (w: DeviceLinear, name: string) => {
    const l = quantizeLinearOnGpu(gpu, k, s, w, mode, group, name);
    made.push(l);
    return l;
  };
  try {
    const layers = src.layers.map((l, i) => {
      const pre = `model.layers.${i}`;
      const f = l.ffn;
      const ffn: FeedForward<DeviceLinear> = f.kind === 'swiglu'
        ? { kind: 'swiglu', gateUp: q(f.gateUp, `${pre}.mlp.gate_up`), down: q(f.down, `${pre}.mlp.down_proj`) }
        : { ...f, experts: f.experts.map((x, e) => ({
            gateUp: q(x.gateUp, `${pre}.block_sparse_moe.experts.${e}.gate_up`), down: q(x.down, `${pre}.block_sparse_moe.experts.${e}.w2`) })) };
      const out: DeviceLayer = { ...l, qkv: q(l.qkv, `${pre}.self_attn.qkv`), o: q(l.o, `${pre}.self_attn.o_proj`), ffn };
      onLayer?.(i + 1, src.layers.length);
      return out;
    });
    return { ...src, mode, layers, free: () => { for (const l of made) freeLinear(l); } };
  } catch (e) {
    for (const l of made) freeLinear(l);
    throw e;
  }
}
