// Public safetensors API: lazy readers for a file or a (sharded) model directory, and writers.
// Implementation lives in safetensors-{header,file,reader,sharded,writer}.ts.
export type { DType, TypedArray, TensorInfo } from './safetensors-header.ts';
export { DTYPE_BYTES } from './safetensors-header.ts';
export type { TensorSource } from './safetensors-reader.ts';
export { openSafetensors } from './safetensors-reader.ts';
export { openSafetensorsDir } from './safetensors-sharded.ts';
export type { TensorToWrite } from './safetensors-writer.ts';
export { writeSafetensors, writeSafetensorsSharded } from './safetensors-writer.ts';
