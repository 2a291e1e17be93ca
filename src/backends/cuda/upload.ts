// Streaming tensors from safetensors files to the GPU through pinned staging buffers: the file is
// read in chunks straight into page-locked memory (two buffers, so reading the next chunk overlaps
// the copy of the previous one) and copied asynchronously; a model never sits whole in host
// memory, only one chunk per buffer. fp16 lands as is, bf16 is converted to fp16 on the GPU
// (weights.cu), fp32 on the host chunk by chunk. Host arrays (validated quantized tensors) take the
// same path.
import * as fs from 'node:fs';
import { fail } from '../../core/errors.ts';
import { f32ArrayToF16 } from '../../core/dtype.ts';
import type { TensorInfo } from '../../io/safetensors.ts';
import type { DeviceBuffer, Gpu, GpuEvent, HostBuffer, Stream } from '../../gpu/runtime.ts';
import type { EngineKernels } from './kernels.ts';

const STAGING_BYTES = 32 << 20;

export class TensorUploader {
  private readonly staging: HostBuffer[];
  private readonly done: GpuEvent[];
  private readonly used = [false, false];
  private next = 0;
  private readonly fds = new Map<string, number>();

  constructor(private readonly gpu: Gpu, private readonly kernels: EngineKernels, private readonly stream: Stream) {
    this.staging = [gpu.allocHost(STAGING_BYTES), gpu.allocHost(STAGING_BYTES)];
    this.done = [gpu.event(), gpu.event()];
  }

  /** A free staging buffer (waits for the copy that last used it). */
  private take(): { buf: HostBuffer; i: number } {
    const i = this.next;
    this.next ^= 1;
    if (this.used[i]) this.done[i]!.sync();
    this.used[i] = true;
    return { buf: this.staging[i]!, i };
  }

  private queue(i: number, dst: DeviceBuffer, dstOffset: number, bytes: number): void {
    this.gpu.copyToDeviceAsync(dst, this.staging[i]!, this.stream, bytes, dstOffset, 0);
    this.done[i]!.record(this.stream);
  }

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      try {
        fd = fs.openSync(file, 'r');
      } catch (e) {
        fail(file, `cannot open (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      this.fds.set(file, fd);
    }
    return fd;
  }

  /** Raw bytes [offset, offset + length) of `file` into dst at dstOffset. */
  private streamFile(file: string, offset: number, length: number, dst: DeviceBuffer, dstOffset: number): void {
    const fd = this.fd(file);
    for (let done = 0; done < length;) {
      const n = Math.min(STAGING_BYTES, length - done);
      const { buf, i } = this.take();
      const view = buf.u8.subarray(0, n);
      let got = 0;
      while (got < n) {
        const r = fs.readSync(fd, view, got, n - got, offset + done + got);
        if (r === 0) fail(file, `unexpected end of file at byte ${offset + done + got}`);
        got += r;
      }
      this.queue(i, dst, dstOffset + done, n);
      done += n;
    }
  }

  /** Host bytes into dst at dstOffset. */
  uploadBytes(data: Uint8Array, dst: DeviceBuffer, dstOffset = 0): void {
    for (let done = 0; done < data.byteLength;) {
      const n = Math.min(STAGING_BYTES, data.byteLength - done);
      const { buf, i } = this.take();
      buf.u8.set(data.subarray(done, done + n));
      this.queue(i, dst, dstOffset + done, n);
      done += n;
    }
  }

  /** A tensor (F16, BF16 or F32) as fp16 into dst at byte offset dstOffset. */
  uploadF16(t: TensorInfo, dst: DeviceBuffer, dstOffset = 0): void {
    const elems = t.shape.reduce((a, b) => a * b, 1);
    if (dstOffset + elems * 2 > dst.bytes) fail(t.name, `does not fit its device buffer (${elems} values)`);
    switch (t.dtype) {
      case 'F16':
        this.streamFile(t.file, t.offset, t.byteLength, dst, dstOffset);
        return;
      case 'BF16': {
        const tmp = this.gpu.alloc(t.byteLength);
        try {
          this.streamFile(t.file, t.offset, t.byteLength, tmp, 0);
          this.kernels.bf16ToF16(tmp, dst.at(dstOffset), elems, this.stream);
          this.stream.sync();
        } finally {
          tmp.free();
        }
        return;
      }
      case 'F32': {
        const fd = this.fd(t.file), chunk = STAGING_BYTES / 2;  // fp32 bytes per chunk → half as many fp16 bytes
        for (let done = 0; done < t.byteLength;) {
          const n = Math.min(chunk, t.byteLength - done);
          const host = Buffer.allocUnsafeSlow(n);
          if (fs.readSync(fd, host, 0, n, t.offset + done) !== n) fail(t.file, `short read in tensor ${t.name}`);
          const half = f32ArrayToF16(new Float32Array(host.buffer, host.byteOffset, n / 4));
          this.uploadBytes(new Uint8Array(half.buffer), dst, dstOffset + done / 2);
          done += n;
        }
        return;
      }
      default:
        fail(t.name, `dtype ${t.dtype} cannot be loaded as fp16 weights (F16, BF16 or F32)`);
    }
  }

  /** Wait for every queued copy (the host arrays given to uploadBytes may be reused after). */
  finish(): void {
    this.stream.sync();
  }

  destroy(): void {
    this.finish();
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
    for (const b of this.staging) b.free();
    for (const e of this.done) e.destroy();
  }
}
