/** Raw bytes to the API over node:net: requests no HTTP client would send (bad targets, bad frames). */
import net from 'node:net';

export interface RawAnswer {
  /** HTTP status of the first response line; null when the server closed without one. */
  status: number | null;
  text: string;
}

/**
 * Writes `chunks` (each after the previous one is flushed; a function chunk is called with what has
 * been received so far and returns the bytes to send, or null to stop) and collects the answer until
 * the server closes the connection or `timeoutMs` passes.
 */
export function rawExchange(
  url: string,
  chunks: Array<Buffer | string | ((received: string) => Buffer | string | null)>,
  timeoutMs = 3000,
  /** Ends the exchange early once what was received is enough (e.g. a WebSocket close frame). */
  doneWhen?: (received: Buffer) => boolean,
): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const received: Buffer[] = [];
    const text = () => Buffer.concat(received).toString('latin1');
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text());
      resolve({ status: m ? Number(m[1]) : null, text: text() });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (d: Buffer) => {
      received.push(d);
      if (doneWhen?.(Buffer.concat(received))) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        const bytes = typeof chunk === 'function' ? chunk(text()) : chunk;
        if (bytes === null || socket.destroyed) return;
        await new Promise<void>((r) => socket.write(bytes, () => r()));
      }
    });
  });
}

/** An HTTP/1.1 request head, exactly as given (no normalisation of the target). */
export function requestHead(method: string, target: string, headers: Record<string, string> = {}): string {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

export const WS_UPGRADE_HEADERS = {
  Connection: 'Upgrade',
  Upgrade: 'websocket',
  'Sec-WebSocket-Version': '13',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
};

/** One client→server WebSocket frame; `masked: false` and odd opcodes make protocol errors. */
export function wsFrame(opts: {
  opcode: number;
  payload: Buffer;
  masked?: boolean;
  fin?: boolean;
  rsv?: number;
}): Buffer {
  const masked = opts.masked ?? true;
  const len = opts.payload.length;
  const head: number[] = [((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | (opts.opcode & 0x0f)];
  const maskBit = masked ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), opts.payload]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(opts.payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([Buffer.from(head), key, body]);
}
