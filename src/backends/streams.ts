/** Stream helpers shared by both backends' bounded file reads and logs. */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { BackendError, type FileContent, type FileStream } from './backend.js';

/** Default cap of `readFile` (a whole file in memory): larger files are read with openFile. */
export const READ_WHOLE_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Passes exactly `size` bytes through: more are cut off (the file grew after its size was
 * announced), fewer fail the stream (it shrank), so a reader never gets a length it was not told.
 */
export function exactly(size: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      const room = size - seen;
      if (room <= 0) return cb();
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      seen += part.length;
      cb(null, part);
    },
    flush(cb: TransformCallback) {
      if (seen < size) cb(new BackendError('transient', `${what}: ended after ${seen} of ${size} bytes`));
      else cb();
    },
  });
}

/** Reads an open file whole; refused (and the stream destroyed) when it is over `maxBytes`. */
export async function readWhole(
  file: FileStream,
  what: string,
  maxBytes = READ_WHOLE_MAX_BYTES,
): Promise<Buffer> {
  if (file.size > maxBytes) {
    file.stream.destroy();
    throw new BackendError('invalid_path', `${what} is ${file.size} bytes, over ${maxBytes}`);
  }
  const chunks: Buffer[] = [];
  for await (const c of file.stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks);
}

/**
 * Keeps only the last `maxBytes` of what is added, in chunks (a log read piece by piece never
 * holds more than about `maxBytes` plus one chunk).
 */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;
  /** Whether anything was dropped. */
  truncated = false;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.chunks.length > 1 && this.bytes - this.chunks[0]!.length >= this.maxBytes) {
      this.bytes -= this.chunks.shift()!.length;
      this.truncated = true;
    }
  }

  /** The kept bytes as text, cut to `maxBytes` at a character boundary. */
  text(): string {
    return tailText(Buffer.concat(this.chunks).toString('utf8'), this.maxBytes, this.truncated);
  }
}

/**
 * The end of `text`, at most `maxBytes` UTF-8 bytes, starting at a whole character (and at a line
 * start when one is near, so a cut log does not begin mid-line).
 */
export function tailText(text: string, maxBytes: number, alreadyCut = false): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes && !alreadyCut) return text;
  let start = Math.max(0, buf.length - maxBytes);
  // Skip UTF-8 continuation bytes: never start inside a character.
  while (start < buf.length && (buf[start]! & 0xc0) === 0x80) start++;
  const out = buf.subarray(start).toString('utf8');
  const nl = out.indexOf('\n');
  return nl >= 0 && nl < 200 ? out.slice(nl + 1) : out;
}

/** Resolves once `stream` takes more writes: at once unless it is backed up; also when it closes. */
export function drained(
  stream: NodeJS.WritableStream & { writableNeedDrain?: boolean; destroyed?: boolean },
) {
  if (!stream.writableNeedDrain || stream.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/** Content to write as a stream of known size (a Buffer becomes a one-chunk stream). */
export function contentStream(content: FileContent): { size: number; stream: Readable } {
  if (Buffer.isBuffer(content)) return { size: content.length, stream: Readable.from([content]) };
  return { size: content.size, stream: content.stream as Readable };
}
