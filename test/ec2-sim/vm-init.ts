/**
 * The init of an ec2-sim "VM" (bundled by vm-image.ts to /sbin/wo-init.mjs, run by node under tini,
 * which is PID 1 and reaps orphaned processes: node cannot waitpid(-1)). It plays cloud-init plus
 * a minimal init system, and its stdout is the instance's console (GetConsoleOutput):
 *
 * - every boot: host key on first boot only (so each instance has its own, kept across stop/start),
 *   sshd supervised in the foreground, then every `/etc/wo/boot.d/*.sh` in the background with sh;
 * - first boot only (marker /var/lib/wo-init/first-boot-done): the key pair's public key (if the
 *   instance was launched with KeyName) into /root/.ssh/authorized_keys, then the user-data script
 *   after the optional delay (sourced by sh after the disk shims' functions), its exit status on
 *   the console;
 * - SIGTERM (docker stop = EC2 StopInstances): stops every child process group, exits.
 *
 * The sim hands user-data and knobs over as files (/var/lib/wo-init/user-data, instance.json,
 * written with putArchive before the first start), never in the environment; the init still strips
 * any WO_SIM_* variable before spawning anything, so nothing the agent inherits names the sim.
 *
 * Node built-ins only: this file runs inside the image, not in the repo.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

const STATE_DIR = '/var/lib/wo-init';
const FIRST_BOOT_MARKER = `${STATE_DIR}/first-boot-done`;
const BOOT_COUNT = `${STATE_DIR}/boot-count`;
const USER_DATA = `${STATE_DIR}/user-data`;
const INSTANCE_JSON = `${STATE_DIR}/instance.json`;
const BOOT_D = '/etc/wo/boot.d';
/**
 * Defines blkid, mkfs and mount as the image's shims (vm-image.ts). The image's sh is busybox,
 * which runs its own applets (mount) before it searches PATH, but a shell function before either.
 */
const SHIM_FUNCTIONS = '/usr/local/lib/ec2-sim/shims.sh';
const HOST_KEY = '/etc/ssh/ssh_host_ed25519_key';
const SSHD = '/usr/sbin/sshd';
const AUTHORIZED_KEYS = '/root/.ssh/authorized_keys';
const STOP_GRACE_MS = 5_000;

/** What the sim writes to instance.json. */
interface InstanceInfo {
  instanceId?: string;
  userDataDelayMs?: number;
  userDataFails?: boolean;
  /** Public keys of the instance's key pair (KeyName), as EC2's cloud-init installs them. */
  authorizedKeys?: string[];
}

const bootStartedAt = Date.now();
const uptime = (): string => `${((Date.now() - bootStartedAt) / 1000).toFixed(2)}s`;
const say = (message: string): void => {
  process.stdout.write(`[wo-init] ${message}\n`);
};

// Strip the sim's own variables before anything is spawned: children inherit a clean environment.
for (const key of Object.keys(process.env)) if (key.startsWith('WO_SIM_')) delete process.env[key];
const childEnv: NodeJS.ProcessEnv = {
  ...process.env,
  HOME: '/root',
  PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
};

/** Process groups started by the init (children run detached, so each leads its own group). */
const groups = new Set<number>();
const live = new Set<ChildProcess>();
let shuttingDown = false;

function track(child: ChildProcess): void {
  if (child.pid === undefined) return;
  groups.add(child.pid);
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** Children write to the console (the init's stdout), stderr included: one ordered stream, like a tty. */
function startProcess(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 1, 1], env: childEnv, detached: true });
  track(child);
  return child;
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return code !== null ? String(code) : `on signal ${signal ?? 'unknown'}`;
}

function readInstanceInfo(): InstanceInfo {
  try {
    return JSON.parse(fs.readFileSync(INSTANCE_JSON, 'utf8')) as InstanceInfo;
  } catch {
    return {};
  }
}

function nextBootNumber(): number {
  let n = 0;
  try {
    n = Number(fs.readFileSync(BOOT_COUNT, 'utf8').trim()) || 0;
  } catch {
    // first boot
  }
  n += 1;
  fs.mkdirSync(STATE_DIR, { recursive: true });
  fs.writeFileSync(BOOT_COUNT, `${n}\n`);
  return n;
}

function ensureHostKey(): void {
  if (!fs.existsSync(HOST_KEY)) {
    const gen = spawnSync(
      '/usr/bin/ssh-keygen',
      ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${os.hostname()}`, '-f', HOST_KEY],
      { encoding: 'utf8', env: childEnv },
    );
    if (gen.status !== 0) {
      say(
        `ssh-keygen failed (${exitText(gen.status, gen.signal)}): ${gen.stderr}${gen.error?.message ?? ''}`,
      );
      return;
    }
    say(`generated SSH host key ${HOST_KEY}`);
  }
  // What cloud-init prints, so whoever reads the console can pin the host key.
  const fp = spawnSync('/usr/bin/ssh-keygen', ['-l', '-f', `${HOST_KEY}.pub`], { encoding: 'utf8' });
  const pub = fs.readFileSync(`${HOST_KEY}.pub`, 'utf8').trim();
  process.stdout.write(
    [
      '-----BEGIN SSH HOST KEY FINGERPRINTS-----',
      fp.stdout.trim(),
      '-----END SSH HOST KEY FINGERPRINTS-----',
      '-----BEGIN SSH HOST KEY KEYS-----',
      pub,
      '-----END SSH HOST KEY KEYS-----',
      '',
    ].join('\n'),
  );
}

/** sshd in the foreground (-D), logging to the console (-e); restarted if it dies. */
function superviseSshd(): void {
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const child = startProcess(SSHD, ['-D', '-e']);
  say(`sshd started (pid ${child.pid ?? '?'})`);
  child.once('error', (err) => say(`sshd could not start: ${err.message}`));
  child.once('exit', (code, signal) => {
    if (child.pid !== undefined) groups.delete(child.pid);
    if (shuttingDown) return;
    say(`sshd exited ${exitText(code, signal)}; restarting in 1s`);
    setTimeout(() => {
      if (!shuttingDown) superviseSshd();
    }, 1_000);
  });
}

function startBootServices(): void {
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(BOOT_D)
      .filter((n) => n.endsWith('.sh'))
      .sort();
  } catch {
    // no boot.d
  }
  if (names.length === 0) {
    say(`no boot services in ${BOOT_D}`);
    return;
  }
  for (const name of names) {
    const child = startProcess('/bin/sh', [`${BOOT_D}/${name}`]);
    say(`boot service ${name} started (pid ${child.pid ?? '?'})`);
    child.once('error', (err) => say(`boot service ${name} could not start: ${err.message}`));
    child.once('exit', (code, signal) => {
      if (!shuttingDown) say(`boot service ${name} exited ${exitText(code, signal)}`);
    });
  }
}

function installAuthorizedKeys(keys: string[]): void {
  if (keys.length === 0) return;
  fs.mkdirSync('/root/.ssh', { recursive: true, mode: 0o700 });
  fs.appendFileSync(AUTHORIZED_KEYS, keys.map((k) => `${k.trim()}\n`).join(''), { mode: 0o600 });
  fs.chmodSync(AUTHORIZED_KEYS, 0o600);
  say(`installed ${keys.length} key pair public key(s) into ${AUTHORIZED_KEYS}`);
}

async function runUserData(info: InstanceInfo): Promise<void> {
  const delay = info.userDataDelayMs ?? 0;
  if (delay > 0) {
    say(`user-data delayed by ${delay} ms`);
    await new Promise((r) => setTimeout(r, delay));
    if (shuttingDown) return;
  }
  let args: string[];
  if (info.userDataFails) {
    say('running user-data: replaced by "exit 1" (userDataFails)');
    args = ['-c', 'exit 1'];
  } else if (fs.existsSync(USER_DATA) && fs.statSync(USER_DATA).size > 0) {
    say(`running user-data (uptime ${uptime()})`);
    // With the sim's disk shims as functions first (see SHIM_FUNCTIONS): same script, same $0.
    args = fs.existsSync(SHIM_FUNCTIONS) ? ['-c', `. ${SHIM_FUNCTIONS}; . "$0"`, USER_DATA] : [USER_DATA];
  } else {
    say('no user-data');
    fs.writeFileSync(FIRST_BOOT_MARKER, `${new Date().toISOString()}\n`);
    return;
  }
  const child = startProcess('/bin/sh', args);
  const status = await new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(`127 (${err.message})`));
    child.once('exit', (code, signal) => resolve(exitText(code, signal)));
  });
  if (shuttingDown && status !== '0') {
    // Interrupted by a stop: like cloud-init, it runs again on the next boot.
    say(`user-data interrupted (${status}); it will run again on the next boot`);
    return;
  }
  // Once per instance, whatever the outcome (cloud-init's per-instance semaphore).
  fs.writeFileSync(FIRST_BOOT_MARKER, `${new Date().toISOString()}\n`);
  say(`user-data exited ${status}`);
}

function signalGroups(signal: NodeJS.Signals): void {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // group already gone
    }
  }
}

async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  say(`${signal}: stopping ${live.size} process(es)`);
  signalGroups('SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  while (live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  signalGroups('SIGKILL');
  say('halted');
  process.exit(0);
}

async function main(): Promise<void> {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void shutdown(signal));
  const boot = nextBootNumber();
  const info = readInstanceInfo();
  say(`boot ${boot}${info.instanceId ? ` of ${info.instanceId}` : ''} (hostname ${os.hostname()})`);

  const firstBoot = !fs.existsSync(FIRST_BOOT_MARKER);
  ensureHostKey();
  if (firstBoot) installAuthorizedKeys(info.authorizedKeys ?? []);
  superviseSshd();
  startBootServices();
  if (firstBoot) await runUserData(info);
  else say('user-data already ran on first boot: skipped');
  if (!shuttingDown) say(`boot ${boot} finished (uptime ${uptime()})`);
}

// An init never returns on its own: stay up until SIGTERM whatever happens below.
setInterval(() => undefined, 1 << 30);
main().catch((err: unknown) => {
  // Like a VM whose init script failed: the console shows why, SSH may still work.
  say(`init failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
});
