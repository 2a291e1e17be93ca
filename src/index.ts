// The curated public API of intscale: load models, quantize (RTN / GPTQ / AWQ W4 + integer scales), save/load
// quantized checkpoints, run the CPU reference engine, evaluate, and drive the GPU GEMMs.
// Everything else under src/ is internal and may change.

// ── errors ──
export { IntscaleError } from './core/errors.ts';

// ── formats: safetensors, model directories, quantized checkpoints ──
export { openSafetensors, openSafetensorsDir, writeSafetensors, writeSafetensorsSharded } from './io/safetensors.ts';
export type { DType, TensorInfo, TensorSource, TensorToWrite } from './io/safetensors.ts';
export { detectModel } from './io/model-dir.ts';
export { loadModel, type LoadedModel, type LoadOptions } from './model/load.ts';
export type { Tokenizer } from './io/tokenizer.ts';
export type { ModelConfig } from './model/config.ts';
export type { QuantizationConfig } from './io/qformat.ts';
export { writeQuantizedModel, type QuantizeOptions } from './quant/quantize-model.ts';
export { loadQuantizedLinears } from './quant/quantized-linears.ts';
export { writeConvertedModel, type ConvertOptions } from './quant/convert.ts';

// ── quantization (CPU definitions every backend reproduces: docs/QUANT_SPEC.md) ──
export { quantizeRtn, dequantize, type QuantizedWeight, type RtnOptions } from './quant/rtn.ts';
export { quantizeActivations } from './quant/act-quant.ts';
export { packInt4, unpackInt4 } from './quant/pack-int4.ts';
export { computeIntegerScales, exactBounds, assertNoOverflow, type Amplifier, type IntegerScales } from './quant/integer-scale.ts';
export { integerScaleReport, precisionWarnings, type IsLayerReport } from './quant/is-report.ts';
export { IsLinear } from './quant/linear-is.ts';
export { FsLinear } from './quant/linear-fs.ts';
export { PcLinear } from './quant/linear-pc.ts';
export { W4A16Linear } from './quant/linear-w4a16.ts';
export { sampleWindows, loadCalibration, type CalibOptions } from './quant/calib-data.ts';
export { calibrateModel, type MethodOptions, type CalibrationResult } from './quant/calibrate.ts';
export { gptqQuantize, prepareHessian } from './quant/gptq.ts';
export { awqSearchScales, awqClipQuantize } from './quant/awq.ts';
export { smoothScales } from './quant/smooth.ts';

// ── the CPU reference engine ──
export type { Linear } from './model/linear.ts';
export { Session, forwardBatch, type Model } from './model/llama.ts';
export { denseLinear, mapLinears, releaseWeights } from './model/weights.ts';

// ── evaluation ──
export { perplexity, type PerplexityResult } from './eval/perplexity.ts';
export { generate, generateBatch } from './eval/generate.ts';
export { compareModes, compareMethods, type CompareRow } from './eval/compare.ts';

// ── GPU (NVIDIA driver, NVRTC, cuBLASLt through koffi; throws "no GPU: ..." without one) ──
export { Gpu } from './gpu/runtime.ts';
export { CublasLtGemm } from './gpu/gemm-baselines.ts';
export { repackWeights, packIntScales, packFloatScales, packHalfScales } from './gpu/repack.ts';
export { planW4Gemm } from './gpu/kernels/w4-gemm-plan.ts';
export { W4GemmLaunch } from './gpu/kernels/w4-gemm-launch.ts';
