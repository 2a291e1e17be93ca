// Typed launchers of src/gpu/kernels/calib_forward.cu (compiled once per Gpu by NVRTC): each takes
// device pointers and sizes in the kernel's documented ABI order and checks the limits it states.
// Every launch is asynchronous on the legacy default stream, in order with cuBLASLt and the copies.
import { fail } from '../../core/errors.ts';
import type { Gpu, Kernel, KernelArg } from '../runtime.ts';

const SOURCE = 'src/gpu/kernels/calib_forward.cu';
const THREADS = 256;
/** calib_forward.cu's AT_ROWS, AT_KEYS, AT_MAX_HD */
const AT_ROWS = 8, AT_KEYS = 32, AT_MAX_HD = 256;
/** Blocks of a grid-stride elementwise launch (enough to fill any GPU; the kernels loop past it). */
const MAX_BLOCKS = 65536;

const p = (ptr: bigint): KernelArg => ({ ptr });
const i32 = (v: number): KernelArg => ({ i32: v });
const i64 = (v: number): KernelArg => ({ i64: v });
const f32 = (v: number): KernelArg => ({ f32: v });
const stride = (n: number) => Math.max(1, Math.min(MAX_BLOCKS, Math.ceil(n / THREADS)));

/** Dynamic shared memory of calib_attention for windows of T rows and head size hd. */
export function attentionSmemBytes(T: number, hd: number): number {
  return 4 * (AT_KEYS * (hd + 1) + AT_KEYS * hd + AT_ROWS * hd + AT_ROWS * T);
}

const NAMES = ['calib_rmsnorm', 'calib_bias', 'calib_rope', 'calib_attention', 'calib_swiglu', 'calib_add', 'calib_dequant'] as const;

export class CalibKernels {
  private readonly k = {} as Record<(typeof NAMES)[number], Kernel>;

  constructor(private readonly gpu: Gpu) {
    const mod = gpu.compile(SOURCE);
    for (const n of NAMES) this.k[n] = mod.fn(n);
  }

  rmsNorm(x: bigint, w: bigint, out: bigint, rows: number, dim: number, eps: number): void {
    if (rows > 0) this.k.calib_rmsnorm.launch({ grid: rows, block: THREADS }, [p(x), p(w), p(out), i32(dim), f32(eps)]);
  }

  bias(y: bigint, b: bigint, rows: number, N: number): void {
    const n = rows * N;
    if (n > 0) this.k.calib_bias.launch({ grid: stride(n), block: THREADS }, [p(y), p(b), i64(n), i32(N)]);
  }

  rope(v: bigint, cos: bigint, sin: bigint, rows: number, nHeads: number, half: number, T: number, interleaved: boolean): void {
    const n = rows * nHeads * half;
    if (n > 0) this.k.calib_rope.launch({ grid: stride(n), block: THREADS }, [p(v), p(cos), p(sin), i32(rows), i32(nHeads), i32(half), i32(T), i32(interleaved ? 1 : 0)]);
  }

  /** The largest windows calib_attention takes at head size hd on this GPU (its shared memory). */
  maxWindow(hd: number): number {
    return Math.floor((this.gpu.maxSmemPerBlock / 4 - (AT_KEYS * (hd + 1) + AT_KEYS * hd + AT_ROWS * hd)) / AT_ROWS);
  }

  attention(q: bigint, k: bigint, v: bigint, out: bigint, S: number, T: number, nHeads: number, nKv: number, hd: number, window: number): void {
    if (hd > AT_MAX_HD) fail('calibration', `the CUDA attention takes head sizes up to ${AT_MAX_HD} (got ${hd})`);
    if (nHeads % nKv !== 0) fail('calibration', `${nHeads} heads do not share ${nKv} KV heads evenly`);
    const maxT = this.maxWindow(hd);
    if (T > maxT) fail('calibration', `windows of ${T} positions exceed the CUDA attention's ${maxT} at head size ${hd} (use a shorter --calib-len)`);
    if (S === 0) return;
    this.k.calib_attention.launch({ grid: [Math.ceil(T / AT_ROWS), nHeads, S], block: 32 * AT_ROWS, smem: attentionSmemBytes(T, hd) },
      [p(q), p(k), p(v), p(out), i32(T), i32(nHeads), i32(nKv), i32(hd), i32(window)]);
  }

  swiglu(gate: bigint, up: bigint, n: number): void {
    if (n > 0) this.k.calib_swiglu.launch({ grid: stride(n), block: THREADS }, [p(gate), p(up), i64(n)]);
  }

  add(x: bigint, y: bigint, n: number): void {
    if (n > 0) this.k.calib_add.launch({ grid: stride(n), block: THREADS }, [p(x), p(y), i64(n)]);
  }

  dequant(q: bigint, scales: bigint, out: bigint, N: number, K: number, G: number): void {
    const n = N * K;
    if (n > 0) this.k.calib_dequant.launch({ grid: stride(n), block: THREADS }, [p(q), p(scales), p(out), i32(N), i32(K), i32(G)]);
  }
}
