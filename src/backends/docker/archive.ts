import tar from 'tar-stream';
import type { Transform } from 'node:stream';
import { BackendError, type FileStream } from '../backend.js';
import { exactly, TailBuffer } from '../streams.js';

/**
 * Opens the one entry of a `docker cp`-style archive of a single path: its size from the tar
 * header, its bytes streamed at the reader's pace (the archive is read no faster). Only a regular
 * file is returned: a directory is not a file, and a symlink is refused rather than followed so a
 * link planted in the workspace cannot redirect a read.
 */
export function openSingleFile(
  archive: NodeJS.ReadableStream & { destroy?: (err?: Error) => unknown },
  path: string,
): Promise<FileStream> {
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    let opened: Transform | null = null;
    let settled = false;
    const fail = (err: BackendError): void => {
      if (!settled) {
        settled = true;
        reject(err);
      } else opened?.destroy(err);
      extract.destroy();
      archive.destroy?.();
    };

    extract.on('entry', (header, stream, next) => {
      if (settled) {
        // Anything after the first entry is not read.
        stream.resume();
        stream.on('end', next);
        return;
      }
      if (header.type !== 'file') {
        stream.resume();
        fail(
          header.type === 'directory'
            ? new BackendError('invalid_path', `${path} is a directory`)
            : new BackendError(
                'invalid_path',
                `${path} is a ${header.type ?? 'special file'}, not a regular file`,
              ),
        );
        return;
      }
      const size = header.size ?? 0;
      const out = exactly(size, path);
      opened = out;
      settled = true;
      out.on('close', () => {
        // The reader is gone (or done): stop reading the archive.
        if (!out.readableEnded) {
          extract.destroy();
          archive.destroy?.();
        }
      });
      stream.on('end', next);
      stream.pipe(out);
      resolve({ size, stream: out });
    });
    extract.on('finish', () => {
      if (!settled) fail(new BackendError('not_found', `${path} not found`));
    });
    extract.on('error', (err: Error) =>
      fail(new BackendError('transient', `reading archive of ${path}: ${err.message}`, { cause: err })),
    );
    archive.on('error', (err: Error) => extract.destroy(err));
    archive.pipe(extract);
  });
}

/**
 * Reads a container's log stream (multiplexed frames, or raw for a TTY container) keeping only its
 * last `maxBytes` of payload: the log is never held whole.
 */
export async function tailLogs(stream: AsyncIterable<Buffer | string>, maxBytes: number): Promise<string> {
  const tail = new TailBuffer(maxBytes);
  let header: Buffer = Buffer.alloc(0);
  let remaining = 0;
  let mode: 'unknown' | 'frames' | 'raw' = 'unknown';
  for await (const c of stream) {
    let buf: Buffer = typeof c === 'string' ? Buffer.from(c) : c;
    if (header.length) buf = Buffer.concat([header, buf]);
    header = Buffer.alloc(0);
    if (mode === 'unknown') {
      if (buf.length < 8) {
        header = buf;
        continue;
      }
      mode = isFrameHeader(buf, 0) ? 'frames' : 'raw';
    }
    if (mode === 'raw') {
      tail.push(buf);
      continue;
    }
    let off = 0;
    while (off < buf.length) {
      if (remaining === 0) {
        if (buf.length - off < 8) {
          header = Buffer.from(buf.subarray(off));
          break;
        }
        remaining = buf.readUInt32BE(off + 4);
        off += 8;
        continue;
      }
      const take = Math.min(remaining, buf.length - off);
      tail.push(Buffer.from(buf.subarray(off, off + take)));
      off += take;
      remaining -= take;
    }
  }
  if (mode === 'unknown' && header.length) tail.push(header);
  return tail.text();
}

const isFrameHeader = (buf: Buffer, offset: number): boolean =>
  offset + 8 <= buf.length &&
  (buf[offset] === 0 || buf[offset] === 1 || buf[offset] === 2) &&
  buf[offset + 1] === 0 &&
  buf[offset + 2] === 0 &&
  buf[offset + 3] === 0;
