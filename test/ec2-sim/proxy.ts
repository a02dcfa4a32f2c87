/**
 * The EC2 endpoint the product talks to: forwards every request to moto unchanged (method, path,
 * headers, body; the response streamed back), except `Action=GetConsoleOutput`, which it answers
 * itself with the instance container's console (moto has no console: it returns canned text).
 *
 * EC2 is a Query API: the AWS SDK sends `Action=…&InstanceId=…` as a form-encoded POST body
 * (older clients may use the query string), so the body is read before forwarding. moto ignores
 * the SigV4 signature, so forwarding the request unchanged keeps it valid.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ConsoleOutputSource {
  /**
   * The console text of an instance, or null when the proxy should let moto answer instead
   * (unknown instance: moto returns the honest InvalidInstanceID.NotFound error).
   */
  (instanceId: string, region: string | undefined): Promise<string | null>;
}

export interface ForwardedRequest {
  action: string | null;
  params: URLSearchParams;
  status: number;
}

export interface Ec2Proxy {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

/** EC2 returns at most the last 64 KB of console output. */
const CONSOLE_LIMIT = 64 * 1024;

/** The region of a SigV4-signed request (`Credential=AKID/20240101/us-east-1/ec2/aws4_request`). */
export function requestRegion(headers: http.IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  return typeof auth === 'string' ? /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(auth)?.[1] : undefined;
}

function xmlEscape(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', "'": 'apos', '"': 'quot' }[c]};`,
  );
}

export function consoleOutputXml(instanceId: string, text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  const tail = bytes.length > CONSOLE_LIMIT ? bytes.subarray(bytes.length - CONSOLE_LIMIT) : bytes;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">',
    `<requestId>${randomUUID()}</requestId>`,
    `<instanceId>${xmlEscape(instanceId)}</instanceId>`,
    `<timestamp>${new Date().toISOString()}</timestamp>`,
    `<output>${tail.toString('base64')}</output>`,
    '</GetConsoleOutputResponse>',
  ].join('');
}

function errorXml(code: string, message: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<Response><Errors><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error></Errors>` +
    `<RequestID>${randomUUID()}</RequestID></Response>`
  );
}

function queryParams(req: http.IncomingMessage, body: Buffer): URLSearchParams {
  const params = new URLSearchParams(new URL(req.url ?? '/', 'http://proxy').search);
  const type = String(req.headers['content-type'] ?? '');
  if (body.length > 0 && (type === '' || type.includes('application/x-www-form-urlencoded'))) {
    for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.append(k, v);
  }
  return params;
}

/** An error the proxy answers instead of forwarding (fault injection). */
export interface InjectedError {
  status: number;
  code: string;
  message: string;
}

export async function startEc2Proxy(opts: {
  motoEndpoint: string;
  consoleOutput: ConsoleOutputSource;
  /** Returns an error to answer instead of forwarding the request to moto, or null. */
  inject?: (action: string | null, params: URLSearchParams) => InjectedError | null;
  /** Called after moto answered a forwarded request (e.g. to reconcile at once after RunInstances). */
  onForwarded?: (request: ForwardedRequest) => void;
  /**
   * Runs once moto answered, before the answer goes back to the client (e.g. to make
   * TerminateInstances take effect before the caller hears it did). Errors are logged, not sent.
   */
  beforeRespond?: (request: ForwardedRequest) => Promise<void> | undefined;
  host?: string;
  port?: number;
  log?: (line: string) => void;
}): Promise<Ec2Proxy> {
  const log = opts.log ?? (() => undefined);
  const target = new URL(opts.motoEndpoint);
  const targetPort = Number(target.port || 80);

  const forward = (
    req: http.IncomingMessage,
    body: Buffer,
    res: http.ServerResponse,
    params: URLSearchParams,
  ): void => {
    const upstream = http.request(
      {
        host: target.hostname,
        port: targetPort,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (up) => {
        const forwarded: ForwardedRequest = {
          action: params.get('Action'),
          params,
          status: up.statusCode ?? 0,
        };
        const respond = (): void => {
          res.writeHead(up.statusCode ?? 502, up.statusMessage, up.headers);
          up.pipe(res);
          up.on('end', () => opts.onForwarded?.(forwarded));
        };
        up.on('error', () => res.destroy());
        // The answer stays buffered in `up` (paused) while the hook runs.
        const hook = opts.beforeRespond?.(forwarded);
        if (!hook) return respond();
        hook.then(respond, (err: unknown) => {
          log(`proxy: ${forwarded.action ?? 'request'} hook failed: ${String(err)}`);
          respond();
        });
      },
    );
    upstream.on('error', (err) => {
      log(`proxy: moto at ${opts.motoEndpoint} failed: ${err.message}`);
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/xml' });
        res.end(errorXml('ServiceUnavailable', `ec2-sim: moto unreachable: ${err.message}`));
      } else res.destroy();
    });
    upstream.end(body);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const params = queryParams(req, body);
      const action = params.get('Action');
      const injected = opts.inject?.(action, params);
      if (injected) {
        log(`proxy: ${action ?? 'request'} answered with injected ${injected.code}`);
        res.writeHead(injected.status, { 'content-type': 'text/xml' });
        res.end(errorXml(injected.code, injected.message));
        return;
      }
      const instanceId = params.get('InstanceId');
      if (action !== 'GetConsoleOutput' || !instanceId) return forward(req, body, res, params);
      opts.consoleOutput(instanceId, requestRegion(req.headers)).then(
        (text) => {
          if (text === null) return forward(req, body, res, params);
          res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
          res.end(consoleOutputXml(instanceId, text));
        },
        (err: unknown) => {
          log(`proxy: GetConsoleOutput ${instanceId} failed: ${String(err)}`);
          res.writeHead(500, { 'content-type': 'text/xml' });
          res.end(errorXml('InternalError', `ec2-sim: console output of ${instanceId}: ${String(err)}`));
        },
      );
    });
  });
  // The SDK keeps connections alive; do not let an idle one hold close() up.
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const shown = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address;
  return {
    endpoint: `http://${shown}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
