// Edits for the bad-input run (scripts/bad-input/run.sh): rewrite a checkpoint or model directory with
// one hand edit. usage: node --import tsx scripts/bad-input/tamper.ts <dir> <op> [resign]
// ops on model.layers.3.mlp.down_proj of a quantized checkpoint: shift+1, shifts-1, negate, forge
// (shifts lowered with ŝ recomputed), qweight, delete; on a source model: nan-weight, nan-norm,
// i16-weight, drop-tensor. `resign` recomputes the layer's checksum (a deliberate forgery).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openSafetensorsDir, writeSafetensorsSharded } from '../../src/io/safetensors.ts';
import { DIGEST_KEY, LAYER_SUFFIXES, layerDigest } from '../../src/io/qformat-digest.ts';
import { f16ArrayToF32 } from '../../src/core/dtype.ts';
import { rint } from '../../src/quant/fp32.ts';
const [dir, op, resign] = process.argv.slice(2) as [string, string, string | undefined];
const L = 'model.layers.3.mlp.down_proj';
const st = openSafetensorsDir(dir);
const t = new Map(st.names().map((n) => [n, { name: n, dtype: st.info(n).dtype, shape: st.info(n).shape, data: st.read(n).slice() as any }]));
const metadata: Record<string, string> = { ...st.metadata };
st.close();
const shift = t.get(`${L}.shift`)?.data as Int8Array, hat = t.get(`${L}.iscales`)?.data as Int16Array;
if (op === 'shift+1') shift[0] += 1;
else if (op === 'shifts-1') shift.forEach((k, i) => { shift[i] = k - 1; });
else if (op === 'negate') hat.forEach((h, i) => { hat[i] = -h; });
else if (op === 'forge') {
  const s = f16ArrayToF32(t.get(`${L}.scales`)!.data as Uint16Array); const g = hat.length / shift.length;
  for (let n = 0; n < shift.length; n++) { shift[n] -= 2; for (let j = 0; j < g; j++) hat[n * g + j] = rint(s[n * g + j]! * 2 ** shift[n]!); }
} else if (op === 'qweight') (t.get(`${L}.qweight`)!.data as Uint8Array)[100] ^= 0x21;
else if (op === 'delete') for (const s of LAYER_SUFFIXES) t.delete(`${L}.${s}`);
else if (op === 'nan-weight') { const w = t.get('model.layers.2.mlp.up_proj.weight')!; (w.data as Uint16Array)[12345] = 0x7e00; }
else if (op === 'nan-norm') { const w = t.get('model.layers.5.input_layernorm.weight')!; (w.data as Uint16Array)[7] = 0x7e00; }
else if (op === 'i16-weight') { const w = t.get('model.layers.1.self_attn.o_proj.weight')!; w.dtype = 'I16'; w.data = new Int16Array(w.data.buffer); }
else if (op === 'drop-tensor') t.delete('model.layers.4.post_attention_layernorm.weight');
else throw new Error(`unknown op ${op}`);
if (resign && op !== 'delete' && shift) {
  const d = JSON.parse(metadata[DIGEST_KEY]!); d[L] = layerDigest(LAYER_SUFFIXES.map((s) => t.get(`${L}.${s}`)!)); metadata[DIGEST_KEY] = JSON.stringify(d);
}
for (const f of fs.readdirSync(dir)) if (f.endsWith('.safetensors') || f === 'model.safetensors.index.json') fs.rmSync(path.join(dir, f));
writeSafetensorsSharded(dir, [...t.values()], { metadata, maxShardBytes: 20_000_000 });
