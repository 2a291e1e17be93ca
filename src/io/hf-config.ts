// Parse a Hugging Face config.json (transformers 4 and 5 spellings) into a ModelConfig.
// Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (run on the CPU engine),
// MixtralForCausalLM (the CPU engine runs it; the GPU engine does not yet). RoPE: default, linear and llama3.
// Reading the file is src/io/validate-model.ts's (with the check of the tensors against it).
import { fail } from '../core/errors.ts';
import type { Arch, ModelConfig, RopeScaling } from '../model/config.ts';

const ARCHITECTURES: Record<string, Arch> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  MixtralForCausalLM: 'mixtral',
};

type Json = Record<string, unknown>;

/** Normalize a parsed config.json object; `where` names the file in errors. */
export function parseHfConfig(json: unknown, where = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(where, 'expected a JSON object');
  const c = json as Json;
  const archs = c.architectures;
  const archName = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined;
  if (!archName) fail(where, 'no "architectures" entry');
  const arch = ARCHITECTURES[archName];
  if (!arch) fail(where, `unsupported architecture ${archName} (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);

  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(where, `"${key}" must be a positive integer (got ${JSON.stringify(v)})`);
    return v;
  };
  const num = (v: unknown, key: string, fallback?: number): number => {
    const x = v ?? fallback;
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(where, `"${key}" must be a number (got ${JSON.stringify(x)})`);
    return x;
  };

  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nKvHeads = int('num_key_value_heads', nHeads);
  const headDim = c.head_dim == null ? dim / nHeads : int('head_dim');
  if (!Number.isInteger(headDim)) fail(where, `hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) fail(where, `num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (headDim % 2 !== 0) fail(where, `head_dim ${headDim} must be even for RoPE`);

  // RoPE: transformers 5 nests everything in rope_parameters; transformers 4 has rope_theta + rope_scaling.
  const params = (typeof c.rope_parameters === 'object' && c.rope_parameters !== null ? c.rope_parameters : undefined) as Json | undefined;
  const legacyScaling = (typeof c.rope_scaling === 'object' && c.rope_scaling !== null ? c.rope_scaling : undefined) as Json | undefined;
  const theta = num(params?.rope_theta ?? c.rope_theta, 'rope_theta', 10000);
  const scalingJson = params ?? legacyScaling;
  const scaling = parseRopeScaling(scalingJson, where);

  const hidden = c.hidden_act ?? c.hidden_activation ?? 'silu';
  if (hidden !== 'silu') fail(where, `hidden_act "${String(hidden)}" is not supported (only silu / SwiGLU)`);

  const ids = (v: unknown): number | undefined => (Array.isArray(v) ? (typeof v[0] === 'number' ? v[0] : undefined) : typeof v === 'number' ? v : undefined);
  const cfg: ModelConfig = {
    arch,
    dim,
    hiddenDim: int('intermediate_size'),
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: int('vocab_size'),
    maxSeq: int('max_position_embeddings', 2048),
    normEps: num(c.rms_norm_eps, 'rms_norm_eps', 1e-6),
    rope: { theta, layout: 'half', ...(scaling ? { scaling } : {}) },
    tieEmbeddings: c.tie_word_embeddings === true,
    qkvBias: arch === 'qwen2' ? c.attention_bias !== false : c.attention_bias === true,
  };
  const bos = ids(c.bos_token_id), eos = ids(c.eos_token_id);
  if (bos !== undefined) cfg.bosId = bos;
  if (eos !== undefined) cfg.eosId = eos;
  if (typeof c.sliding_window === 'number' && c.use_sliding_window !== false) cfg.slidingWindow = c.sliding_window;
  if (arch === 'mixtral') {
    cfg.nExperts = int('num_local_experts');
    cfg.nExpertsPerTok = int('num_experts_per_tok');
    if (cfg.nExpertsPerTok > cfg.nExperts) fail(where, `num_experts_per_tok ${cfg.nExpertsPerTok} exceeds num_local_experts ${cfg.nExperts}`);
  }
  return cfg;
}

function parseRopeScaling(s: Json | undefined, where: string): RopeScaling | undefined {
  if (!s) return undefined;
  const type = s.rope_type ?? s.type;
  if (type === undefined || type === null || type === 'default') return undefined;
  const f = (key: string): number => {
    const v = s[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(where, `rope scaling "${key}" must be a positive number (got ${JSON.stringify(v)})`);
    return v;
  };
  if (type === 'linear') return { type: 'linear', factor: f('factor') };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: f('factor'),
      lowFreqFactor: f('low_freq_factor'),
      highFreqFactor: f('high_freq_factor'),
      originalMaxPos: f('original_max_position_embeddings'),
    };
  }
  fail(where, `rope scaling type "${String(type)}" is not supported (default, linear, llama3)`);
}
