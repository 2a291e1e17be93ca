// `intscale doctor`: what GPU support this machine has — the GPU (name, cc, SMs, memory), the
// driver version and each library (libcuda, NVRTC, cuBLASLt) found or missing with the paths
// tried. Without a driver it prints one clear line and exits 0: the CPU path still works.
import type { Command } from 'commander';
import { tryCuda } from '../gpu/ffi/cuda.ts';
import { cublasLtVersionString, tryCublasLt } from '../gpu/ffi/cublaslt.ts';
import { nvrtcVersionString, tryNvrtc } from '../gpu/ffi/nvrtc.ts';
import { Gpu } from '../gpu/runtime.ts';

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check the NVIDIA driver, GPU, NVRTC and cuBLASLt')
    .action(() => {
      for (const line of doctorReport()) process.stdout.write(`${line}\n`);
    });
}

/** The doctor's lines (no GPU: a single line). */
export function doctorReport(): string[] {
  const driver = tryCuda();
  if ('error' in driver) {
    return [`no NVIDIA driver found (libcuda.so.1): the CPU path works; GPU commands are unavailable`];
  }
  const lines = [`libcuda   found  ${driver.api.path}`];
  try {
    const gpu = Gpu.open();
    const v = gpu.driverVersion;
    lines.unshift(
      `GPU       ${gpu.name} (cc ${gpu.cc.join('.')}, ${gpu.arch}, ${gpu.smCount} SMs, ` +
        `${(gpu.totalMemBytes / 2 ** 30).toFixed(1)} GiB, L2 ${(gpu.l2Bytes / 2 ** 20).toFixed(0)} MiB)`,
      `driver    CUDA ${Math.floor(v / 1000)}.${(v % 1000) / 10}`,
    );
  } catch (err) {
    lines.unshift(`GPU       unavailable: ${(err as Error).message}`);
  }
  const nv = tryNvrtc();
  lines.push('api' in nv ? `NVRTC     found  ${nv.api.path} (version ${nvrtcVersionString(nv.api)})`
    : `NVRTC     missing (tried ${nv.tried.join(', ')})`);
  const lt = tryCublasLt();
  lines.push('api' in lt ? `cuBLASLt  found  ${lt.api.path} (version ${cublasLtVersionString(lt.api)})`
    : `cuBLASLt  missing (tried ${lt.tried.join(', ')})`);
  return lines;
}
