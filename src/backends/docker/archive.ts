import tar from 'tar-stream';
import { BackendError } from '../backend.js';

/**
 * Reads the one entry of a `docker cp`-style archive of a single path. Only a regular file is
 * returned: a directory is not a file, and a symlink is refused rather than followed so a link
 * planted in the workspace cannot redirect a read.
 */
export function extractSingleFile(archive: NodeJS.ReadableStream, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    let result: Buffer | undefined;
    let failure: BackendError | undefined;
    let first = true;

    extract.on('entry', (header, stream, next) => {
      const isFirst = first;
      first = false;
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => {
        if (isFirst && header.type === 'file' && Buffer.isBuffer(c)) chunks.push(c);
      });
      stream.on('end', () => {
        if (isFirst) {
          if (header.type === 'file') result = Buffer.concat(chunks);
          else if (header.type === 'directory')
            failure = new BackendError('invalid_path', `${path} is a directory`);
          else
            failure = new BackendError(
              'invalid_path',
              `${path} is a ${header.type ?? 'special file'}, not a regular file`,
            );
        }
        next();
      });
      stream.resume();
    });
    extract.on('finish', () => {
      if (failure) reject(failure);
      else if (result) resolve(result);
      else reject(new BackendError('not_found', `${path} not found`));
    });
    extract.on('error', (err: Error) =>
      reject(new BackendError('transient', `reading archive of ${path}: ${err.message}`, { cause: err })),
    );
    archive.on('error', (err: Error) => extract.destroy(err));
    archive.pipe(extract);
  });
}

/**
 * Docker multiplexes stdout/stderr of a non-TTY container into frames: 1 byte stream id, 3 zero
 * bytes, 4 bytes big-endian length. Returns the payloads in arrival order as text. Anything that
 * does not look like a frame (a TTY container's raw log) is kept as is.
 */
export function demuxLogs(buf: Buffer): string {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const streamId = buf[offset];
    const looksLikeFrame =
      offset + 8 <= buf.length &&
      (streamId === 0 || streamId === 1 || streamId === 2) &&
      buf[offset + 1] === 0 &&
      buf[offset + 2] === 0 &&
      buf[offset + 3] === 0;
    if (!looksLikeFrame) {
      out.push(buf.subarray(offset));
      break;
    }
    const size = buf.readUInt32BE(offset + 4);
    out.push(buf.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(out).toString('utf8');
}
