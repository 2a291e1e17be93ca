// The modes a model runs its decoder projections in, spelled one way in code, on the CLI (--mode,
// --modes) and in JSON ("mode" fields): fp16 (the dense weights) and the four W4 modes. The GPU
// kernels take these too; their entry-point names and W4_SELECT defines use short forms (is, fs,
// pc), which only src/gpu/kernels/w4-gemm-plan.ts maps to.
import { fail } from './errors.ts';

/**
 * A W4 mode: fp16 activations (w4a16), or per-token int8 activations with float group scales
 * (w4a8-fs), integer group scales (w4a8-is) or per-channel scales (w4a8-pc).
 */
export type QuantMode = 'w4a16' | 'w4a8-fs' | 'w4a8-is' | 'w4a8-pc';

/** fp16 or a W4 mode. */
export type Mode = 'fp16' | QuantMode;

export const MODES: readonly Mode[] = ['fp16', 'w4a16', 'w4a8-fs', 'w4a8-is', 'w4a8-pc'];

/** A mode as the user typed it; only the spellings of MODES are accepted (one-line error naming them). */
export function parseMode(text: string, option = '--mode'): Mode {
  if (!(MODES as readonly string[]).includes(text)) fail(option, `unknown mode '${text}' (${MODES.join(', ')})`);
  return text as Mode;
}
