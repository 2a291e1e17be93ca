// A sharded safetensors directory written as tensors arrive (streaming quantize/convert): tensors
// are buffered until a shard's worth (maxShardBytes) is held, that shard is written at once
// (writeSafetensors: atomic), and finish() renames the shards to model-0000i-of-0000n (or
// model.safetensors when there is only one) and writes the index. So memory holds at most one
// shard plus the tensor being added. The directory is expected to be a temporary one that the
// caller renames into place (the atomicity of the whole output is the caller's).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { DTYPE_BYTES } from './safetensors-header.ts';
import { writeAll, writeAtomically } from './safetensors-file.ts';
import { INDEX_FILE, SINGLE_FILE } from './safetensors-sharded.ts';
import { writeSafetensors, type TensorToWrite } from './safetensors-writer.ts';

/** Shard size of streaming writes: small enough that a 7B-shaped model stays well under 3 GB. */
export const STREAM_SHARD_BYTES = 1_000_000_000;

export class ShardStreamWriter {
  private pending: TensorToWrite[] = [];
  private pendingBytes = 0;
  private readonly parts: { file: string; names: string[] }[] = [];
  private readonly seen = new Set<string>();
  private totalBytes = 0;
  private finished = false;

  constructor(private readonly dir: string, private readonly metadata: Record<string, string> = {}, private readonly maxShardBytes = STREAM_SHARD_BYTES) {
    if (!(maxShardBytes > 0)) fail(dir, `maxShardBytes must be positive, got ${maxShardBytes}`);
    fs.mkdirSync(dir, { recursive: true });
  }

  add(tensors: TensorToWrite[]): void {
    if (this.finished) fail(this.dir, 'stream writer used after finish()');
    for (const t of tensors) {
      if (this.seen.has(t.name)) fail(this.dir, `tensor ${t.name} appears twice`);
      this.seen.add(t.name);
      const b = t.data.length * DTYPE_BYTES[t.dtype];
      if (this.pending.length > 0 && this.pendingBytes + b > this.maxShardBytes) this.flush();
      this.pending.push(t);
      this.pendingBytes += b;
      this.totalBytes += b;
    }
  }

  private flush(): void {
    const file = path.join(this.dir, `.part-${String(this.parts.length + 1).padStart(5, '0')}.safetensors`);
    writeSafetensors(file, this.pending, this.metadata);
    this.parts.push({ file, names: this.pending.map((t) => t.name) });
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Write the last shard, name the shards, write the index; returns the shard paths. `extra`
   *  metadata known only at the end (checksums) goes into the last shard's header and the index. */
  finish(extra: Record<string, string> = {}): string[] {
    if (this.finished) fail(this.dir, 'finish() called twice');
    Object.assign(this.metadata, extra);
    if (this.pending.length > 0 || this.parts.length === 0) this.flush();
    this.finished = true;
    const n = this.parts.length;
    if (n === 1) {
      const file = path.join(this.dir, SINGLE_FILE);
      fs.renameSync(this.parts[0]!.file, file);
      return [file];
    }
    const pad = (i: number) => String(i).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    const files = this.parts.map((p, i) => {
      const shard = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
      fs.renameSync(p.file, path.join(this.dir, shard));
      for (const name of p.names) Object.defineProperty(weightMap, name, { value: shard, enumerable: true });
      return path.join(this.dir, shard);
    });
    const sorted: Record<string, string> = {};
    for (const name of Object.keys(weightMap).sort()) Object.defineProperty(sorted, name, { value: weightMap[name], enumerable: true });
    const index = { metadata: { ...this.metadata, total_size: this.totalBytes }, weight_map: sorted };
    writeAtomically(path.join(this.dir, INDEX_FILE), (fd) => writeAll(fd, Buffer.from(JSON.stringify(index, null, 2) + '\n', 'utf8')));
    return files;
  }
}
