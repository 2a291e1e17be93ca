// A perplexity is only a result when it is finite: NaN or ±Inf means the model produced non-finite
// logits (NaN/Inf weights, or activations overflowing fp32), and the commands that measure one stop
// with an error naming the model (and the mode) rather than printing "perplexity NaN" with exit 0.
import { fail } from '../core/errors.ts';

/** fail(where, ...) unless `ppl` is a finite number; `mode` names the variant measured. */
export function assertFinitePerplexity(where: string, ppl: number, mode?: string): void {
  if (Number.isFinite(ppl)) return;
  fail(where, `${mode ? `${mode}: ` : ''}perplexity is ${ppl}: the model produced non-finite logits (NaN/Inf weights or fp32 overflow), so there is no result`);
}
