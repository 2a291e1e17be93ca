// The list of CLI commands; each command lives in its own file and exports `register(program)`.
// Add a command by adding one import and one entry here.
import type { Command } from 'commander';
import { register as registerDoctor } from './doctor.ts';
import { register as registerBench } from './bench.ts';
import { register as registerQuantize } from './quantize.ts';
import { register as registerInspect } from './inspect.ts';
import { register as registerCompare } from './compare.ts';
import { register as registerDemo } from './demo.ts';
import { register as registerEval } from './eval.ts';
import { register as registerGenerate } from './generate.ts';
import { register as registerConvert } from './convert.ts';
import { register as registerBatch } from './batch.ts';
import { register as registerServe } from './serve.ts';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [registerDoctor, registerBench, registerQuantize, registerInspect, registerCompare, registerDemo, registerEval, registerGenerate, registerBatch, registerServe, registerConvert];
