import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import express, { Router, type Request, type Response } from 'express';
import * as files from '../../app/files.js';
import { BackendError, type FileContent } from '../../backends/backend.js';
import { principalKey, principalOf } from '../auth.js';
import { boundsOf } from '../bounds.js';
import { CappedCounts } from '../capped-counts.js';
import { bufferedUploads } from '../metrics.js';
import type { ApiDeps } from '../deps.js';
import { HttpError, parse } from '../errors.js';
import { fileContentQuery, fileListQuery } from '../schemas.js';
import { MANAGE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

export const MAX_FILE_BYTES = 10 * 1024 * 1024;

/** Files API (`/v1/workspaces/:id/files…`), served directly by the backend, not through Temporal. */
export function filesRouter(deps: ApiDeps): Router {
  const r = loadsWorkspace(Router(), deps.db);
  const bounds = boundsOf(deps.settings);

  /**
   * The caller's workspace (another org's or an unknown id → 404), the validated query, and a 409
   * unless it is online: the files live in the running generation's resource.
   */
  function load<Q>(res: Response, query: () => Q) {
    const w = workspaceOf(res, MANAGE);
    const q = query();
    files.requireOnline(w);
    return { w, q };
  }

  r.get('/:id/files', async (req, res) => {
    const { w, q } = load(res, () => {
      const { root, path, depth } = parse(fileListQuery, req.query, 'query');
      return { root, path: path ?? '', depth };
    });
    const { items, truncated } = await files.listFiles(deps, w, q, bounds.fileListMaxEntries);
    res.json({ items, truncated });
  });

  r.get('/:id/files/content', async (req, res) => {
    const { w, q } = load(res, () => parse(fileContentQuery, req.query, 'query'));
    const file = await files.openFile(deps, w, q, bounds.fileReadMaxBytes);
    res.status(200).type('application/octet-stream').set('content-length', String(file.size));
    // Streamed at the client's pace: a slow reader slows the backend read, nothing piles up here.
    const source = file.stream as unknown as Readable; // both backends hand out node Readables
    try {
      await pipeline(source, res);
    } catch (err) {
      // Headers are gone: a failed read can only cut the answer short (its length says so). A
      // client that went away is no failure worth a log line.
      if (!res.destroyed || err instanceof BackendError) {
        deps.log.warn({ err, workspaceId: w.id }, 'file read cut short');
      }
      res.destroy();
    }
  });

  // Bodies without a declared length (or compressed) are read whole, within the same limit, and
  // held until written: so many at once, per process and per principal, that the buffers stay
  // bounded. Declared-length bodies are streamed (above) and not counted.
  const rawBody = express.raw({ type: () => true, limit: MAX_FILE_BYTES });
  const buffered = new CappedCounts(bounds.bufferedUploadsMax, bounds.bufferedUploadsPerPrincipal);
  /** A slot for one body read whole; the returned function gives it back (call it once). */
  const takeUploadSlot = (res: Response): (() => void) => {
    const release = buffered.take(principalKey(principalOf(res)));
    if (typeof release !== 'function') {
      // Answered before the body is read: the connection goes with the answer.
      res.set('connection', 'close');
      throw new HttpError(
        429,
        'too_many_uploads',
        'too many uploads of unknown length at once; retry shortly',
        {
          retryAfterSeconds: 5,
        },
      );
    }
    bufferedUploads.inc();
    return () => {
      release();
      bufferedUploads.dec();
    };
  };
  const readWhole = async (req: Request, res: Response): Promise<Buffer> => {
    await new Promise<void>((resolve, reject) =>
      rawBody(req, res, (err?: unknown) => (err ? reject(err) : resolve())),
    );
    const body: unknown = req.body;
    return Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  };

  r.put('/:id/files/content', async (req, res) => {
    const declared = req.get('content-length');
    const size = declared === undefined ? null : Number(declared);
    const encoded = (req.get('content-encoding') ?? 'identity') !== 'identity';
    if (size !== null && size > MAX_FILE_BYTES) {
      req.resume();
      throw new HttpError(413, 'payload_too_large', 'request body too large');
    }
    const { w, q } = load(res, () => parse(fileContentQuery, req.query, 'query'));
    let content: FileContent | undefined;
    let release = (): void => undefined;
    if (size !== null && Number.isSafeInteger(size) && !encoded) {
      // Streamed to the workspace at the client's pace: never held whole here. Through a PassThrough,
      // so a backend that gives up on the stream does not tear down the request (its answer still
      // goes out); a client that goes away fails the stream.
      const body = new PassThrough();
      req.pipe(body);
      req.once('close', () => {
        if (!req.complete) body.destroy(new Error('upload cut short'));
      });
      content = { size, stream: body };
    } else {
      release = takeUploadSlot(res);
    }
    try {
      if (content === undefined) content = await readWhole(req, res);
      await files.writeFile(deps, w, q, content);
    } catch (err) {
      // Refused before the whole upload was read: drain the rest so the answer reaches the client.
      if (!req.complete) {
        req.unpipe();
        req.resume();
      }
      throw err;
    } finally {
      release();
    }
    res.status(204).end();
  });

  r.delete('/:id/files/content', async (req, res) => {
    const { w, q } = load(res, () => parse(fileContentQuery, req.query, 'query'));
    await files.deleteFile(deps, w, q);
    res.status(204).end();
  });

  return r;
}
