/**
 * A terminal WebSocket client and probes of the shells a terminal leaves in a workspace, shared by
 * the terminal suites (test/parity/terminal.test.ts, test/integration/terminal-reaper.test.ts).
 */
import { expect } from 'vitest';
import WebSocket from 'ws';
import type { BackendKind } from '../../src/backends/backend.js';
import type { Stack } from './stack.js';

export interface Term {
  ws: WebSocket;
  /** Everything received so far, as text. */
  text(): string;
  /** Bytes received so far. */
  size(): number;
  /** Resolves with the output once it matches (only output received after `from` counts). */
  expectOutput(re: RegExp, from?: number, timeoutMs?: number): Promise<string>;
  send(text: string): void;
  resize(cols: number, rows: number): void;
  closed: Promise<{ code: number; reason: string }>;
  opened: Promise<void>;
}

export function openTerm(baseUrl: string, id: string, opts: { token?: string; query?: boolean } = {}): Term {
  const wsUrl = new URL(`/v1/workspaces/${id}/terminal`, baseUrl.replace(/^http/, 'ws'));
  const headers: Record<string, string> = {};
  if (opts.token && opts.query) wsUrl.searchParams.set('token', opts.token);
  else if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const ws = new WebSocket(wsUrl, { headers });
  let out = Buffer.alloc(0);
  const waiters = new Set<() => void>();
  ws.on('message', (data, isBinary) => {
    expect(isBinary).toBe(true);
    out = Buffer.concat([out, data as Buffer]);
    for (const w of waiters) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  opened.catch(() => undefined);
  return {
    ws,
    text: () => out.toString('utf8'),
    size: () => out.length,
    expectOutput(re, from = 0, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const text = out.subarray(from).toString('utf8');
          if (re.test(text)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(text);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${re} in terminal output: ${JSON.stringify(out.subarray(from).toString())}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    send: (text) => ws.send(Buffer.from(text), { binary: true }),
    resize: (cols, rows) => ws.send(JSON.stringify({ type: 'resize', cols, rows })),
    closed,
    opened,
  };
}

/** Runs a command in a container (no TTY) and returns its stdout. */
export async function dockerRun(stack: Stack, container: string, cmd: string[]): Promise<string> {
  const exec = await stack.docker
    .getContainer(container)
    .exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  // Multiplexed stdout/stderr frames: 8-byte header per frame.
  const raw = Buffer.concat(chunks);
  const parts: Buffer[] = [];
  for (let i = 0; i + 8 <= raw.length;) {
    const len = raw.readUInt32BE(i + 4);
    if (raw[i] === 1) parts.push(raw.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The container the workspace's shell runs in: the workspace container, or the ec2-sim "VM". */
export async function shellContainer(backend: BackendKind, stack: Stack, id: string, generation: number) {
  if (backend === 'docker') return `ws-${id}-g${generation}`;
  const [vm] = await stack.docker.listContainers({
    filters: { label: ['wo.ec2-sim=1', `wo.workspace-id=${id}`] },
  });
  if (!vm) throw new Error(`no ec2-sim container for ${id}`);
  return vm.Id;
}

/**
 * Terminal sessions still alive in the workspace: docker — execs of the container still running
 * (besides the one asking) and shells on a PTY; ec2 — sshd sessions on a PTY and shells on a PTY.
 */
export async function liveSessions(backend: BackendKind, stack: Stack, id: string, generation: number) {
  const container = await shellContainer(backend, stack, id, generation);
  const found: string[] = [];
  if (backend === 'docker') {
    const info = await stack.docker.getContainer(container).inspect();
    for (const execId of info.ExecIDs ?? []) {
      const e = await stack.docker
        .getExec(execId)
        .inspect()
        .catch(() => null);
      if (e?.Running) found.push(`exec ${execId}: ${e.ProcessConfig.entrypoint}`);
    }
  }
  // Processes whose controlling terminal is a pts: the shells (and, on ec2, `sshd: root@pts/N`).
  const ps = await dockerRun(stack, container, [
    '/bin/sh',
    '-c',
    'for d in /proc/[0-9]*; do t=$(readlink $d/fd/0 2>/dev/null); case "$t" in /dev/pts/*) echo "${d#/proc/} $t $(tr "\\0" " " < $d/cmdline)";; esac; done; ps | grep "@pts/" | grep -v grep; true',
  ]);
  found.push(...ps.split('\n').filter((l) => l.trim() !== ''));
  return found;
}

/** Pids (with their command lines) of the processes carrying a docker terminal session's marker. */
export async function markedProcesses(stack: Stack, container: string, sessionId: string): Promise<string[]> {
  const out = await dockerRun(stack, container, [
    '/bin/sh',
    '-c',
    `for d in /proc/[0-9]*; do if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qx "WO_TERMINAL_SESSION=$1"; then echo "\${d#/proc/} $(tr '\\0' ' ' < $d/cmdline)"; fi; done; true`,
    'probe',
    sessionId,
  ]);
  return out.split('\n').filter((l) => l.trim() !== '');
}
