/**
 * Requests Node's HTTP parser refuses before any route runs (a malformed request line or header,
 * headers over the size limit, both Content-Length and chunked, headers sent too slowly). Node's
 * own answer has an empty body; this one is in the contract's shape (`{error: {code, message}}`),
 * with the status Node would give, and the connection is closed as Node would close it.
 */
import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** A peer that keeps its end open after the answer is cut after this. */
const LINGER_MS = 1_000;

const ANSWERS: Record<string, [status: number, code: string, message: string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'request headers too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'payload_too_large', 'chunk extensions too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'the request was not received in time'],
};
const MALFORMED: [number, string, string] = [400, 'invalid_request', 'malformed HTTP request'];

/**
 * A whole HTTP/1.1 answer in the contract's error shape, written straight to a socket no route
 * serves (a refused connection, a request the parser refused), then closed.
 */
export function rawJsonAnswer(status: number, code: string, message: string, headers: string[] = []): string {
  const body = JSON.stringify({ error: { code, message } });
  return [
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...headers,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/** The raw answer to a parser error of `code`. */
export function clientErrorAnswer(code: string | undefined): string {
  return rawJsonAnswer(...((code !== undefined && ANSWERS[code]) || MALFORMED));
}

export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node: answer only when nothing of a response is on the wire yet (a parser error on a kept-
    // alive connection may come while an answer is being written; `_httpMessage` is that answer).
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    socket.end(clientErrorAnswer(err.code));
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  });
}
