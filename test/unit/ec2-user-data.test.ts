/**
 * The EC2 user-data script: three values (platform URL, bootstrap token, SSH public key) and the
 * id of the data volume it mounts at /workspace, plus the steps that install the agent as a boot
 * service. Checked as text, by `sh -n`, and by
 * running it for real with its absolute paths moved into a temp dir and fake `node`/`systemctl`.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateParsableKeyPair } from '../../src/backends/ec2/ec2-backend.js';
import { renderUserData, USER_DATA_PATHS } from '../../src/backends/ec2/user-data.js';

// The product's generator: ssh2's own makes about 1 pair in 256 that nothing can parse.
const { publicKey } = generateParsableKeyPair('ws-abc-g3');
const input = {
  platformUrl: 'http://172.31.0.1:8080/base?x=1&y=2',
  bootstrapToken: 'wo_boot_Zm9vYmFyYmF6cXV4LWxvbmctcmFuZG9tLXZhbHVl',
  sshPublicKey: publicKey,
};

const count = (haystack: string, needle: string): number => haystack.split(needle).length - 1;

const dirs: string[] = [];
const pids: number[] = [];
afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'wo-userdata-'));
  dirs.push(d);
  return d;
}

/** `sh -n` on a script text; returns stderr ('' when it parses). */
function shellSyntaxErrors(script: string): string {
  const file = join(tempDir(), 'script.sh');
  writeFileSync(file, script);
  const res = spawnSync('sh', ['-n', file], { encoding: 'utf8' });
  return res.status === 0 ? '' : res.stderr || `exit ${res.status}`;
}

/** The boot.d script the user-data writes (its quoted heredoc). */
function bootScriptOf(script: string): string {
  const m = /cat > \/etc\/wo\/boot\.d\/agent\.sh <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(script);
  if (!m?.[1]) throw new Error('boot.d heredoc not found');
  return `${m[1]}\n`;
}

const MOVED = /(^|[\s'"=(])\/(opt|root|etc|configs|workspace|run|var)(?=\/|[\s'";)]|$)/gm;

/**
 * The script with every absolute path it writes moved under `root`, so it can run on the test
 * machine without touching /etc, /root or the host's systemd. /proc stays real (the pid guard reads it).
 */
function sandboxed(script: string, root: string): string {
  const moved = script.replace(MOVED, `$1${root}/$2`);
  const left = moved.replaceAll(root, '<root>').match(MOVED);
  if (left) throw new Error(`paths left outside the sandbox: ${left.join(', ')}`);
  return moved;
}

/**
 * Runs sh with output in files, not pipes: the agent it starts in the background keeps its stdout
 * (the console, on a VM), and spawnSync would wait for a pipe held open by it.
 */
function runSh(
  root: string,
  args: string[],
  path: string,
): { status: number | null; stdout: string; stderr: string } {
  const out = join(root, `out-${Date.now()}-${Math.random()}`);
  const err = `${out}.err`;
  const outFd = openSync(out, 'w');
  const errFd = openSync(err, 'w');
  try {
    const res = spawnSync('sh', args, {
      stdio: ['ignore', outFd, errFd],
      env: { PATH: path, HOME: root },
      timeout: 20_000,
    });
    return { status: res.status, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
}

function fakeBin(root: string, withSystemctl: boolean): string {
  const bin = join(root, 'fakebin');
  mkdirSync(bin, { recursive: true });
  // Records its arguments and the agent's environment, then stays up like the agent would.
  writeFileSync(
    join(bin, 'node'),
    `#!/bin/sh\nprintf '%s|%s|%s\\n' "$*" "$WO_PLATFORM_URL" "$WO_BOOTSTRAP_TOKEN" >> "${root}/node-calls"\nsleep 30\n`,
  );
  chmodSync(join(bin, 'node'), 0o755);
  if (withSystemctl) {
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> "${root}/systemctl-calls"\n`);
    chmodSync(join(bin, 'systemctl'), 0o755);
  }
  return bin;
}

function prepareRoot(root: string): void {
  mkdirSync(join(root, 'opt', 'agent'), { recursive: true });
  writeFileSync(join(root, 'opt', 'agent', 'agent.mjs'), '// agent\n');
}

/** The fake bin first. A real systemctl further down is harmless: /run/systemd/system is sandboxed. */
const searchPath = (bin: string): string => `${bin}:/usr/bin:/bin`;

/** The fake agent's recorded starts: whole lines only (a line being written is not one yet). */
function agentStarts(calls: string): string[] {
  if (!existsSync(calls)) return [];
  return readFileSync(calls, 'utf8').split('\n').slice(0, -1);
}

async function until(probe: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('EC2 user-data', () => {
  const script = renderUserData(input);

  it('holds exactly the URL, the token and the public key, once each', () => {
    expect(script.startsWith('#!/bin/sh\n')).toBe(true);
    expect(script).toContain(`WO_PLATFORM_URL='${input.platformUrl}'\n`);
    expect(script).toContain(`WO_BOOTSTRAP_TOKEN='${input.bootstrapToken}'\n`);
    expect(script).toContain(`WO_SSH_PUBLIC_KEY='${publicKey}'\n`);
    expect(count(script, input.platformUrl)).toBe(1);
    expect(count(script, input.bootstrapToken)).toBe(1);
    expect(count(script, publicKey.split(' ')[1]!)).toBe(1);
    // The three single-quoted assignments are the only literal values in the script.
    const assignments = script.match(/^[A-Z_]+='.*'$/gm) ?? [];
    expect(assignments.map((a) => a.split('=')[0])).toEqual([
      'WO_PLATFORM_URL',
      'WO_BOOTSTRAP_TOKEN',
      'WO_SSH_PUBLIC_KEY',
    ]);
    // Small enough for EC2's 16 KB user-data limit with room to spare.
    expect(Buffer.byteLength(script)).toBeLessThan(8 * 1024);
  });

  it('has the boot-service steps: env file 600, authorized_keys 700/600, systemd unit or boot.d', () => {
    for (const step of [
      `> ${USER_DATA_PATHS.env}`,
      `chmod 600 ${USER_DATA_PATHS.env}`,
      'chmod 700 /root/.ssh',
      'chmod 600 /root/.ssh/authorized_keys',
      '>> /root/.ssh/authorized_keys',
      `EnvironmentFile=${USER_DATA_PATHS.env}`,
      `ExecStart=$NODE_BIN ${USER_DATA_PATHS.agent}`,
      'systemctl enable --now wo-agent.service',
      `cat > ${USER_DATA_PATHS.bootScript} <<'EOF'`,
      `sh ${USER_DATA_PATHS.bootScript}`,
    ]) {
      expect(script, step).toContain(step);
    }
    expect(script).toContain('single-use');
  });

  it('carries no secret-looking content beyond the bootstrap token', () => {
    const withoutToken = script.replace(input.bootstrapToken, '<token>').replace(publicKey, '<key>');
    expect(withoutToken).not.toMatch(/PRIVATE KEY|AKIA[0-9A-Z]{16}|password\s*=|secret\s*=|api[_-]?key\s*=/i);
    expect(withoutToken).not.toMatch(/config\.yaml|runtime:|WO_SECRET|WO_WORKSPACE_TOKEN/);
    // No other long opaque value (a leaked credential would look like one).
    expect(withoutToken.match(/[A-Za-z0-9+/_]{24,}/g) ?? []).toEqual([]);
  });

  it('is accepted by sh -n, and so is the boot script it writes', () => {
    expect(shellSyntaxErrors(script)).toBe('');
    expect(shellSyntaxErrors(bootScriptOf(script))).toBe('');
  });

  it('refuses values that could break out of the quoting', () => {
    const bad = [
      { ...input, bootstrapToken: "tok'; rm -rf /; '" },
      { ...input, bootstrapToken: 'tok\nWO_X=1' },
      { ...input, bootstrapToken: '' },
      { ...input, platformUrl: 'not a url' },
      { ...input, platformUrl: 'http://x/$(id)' },
      { ...input, sshPublicKey: `${publicKey}\nssh-ed25519 AAAAother` },
      { ...input, sshPublicKey: 'ssh-ed25519 AAAA`id`' },
    ];
    for (const b of bad) expect(() => renderUserData(b), JSON.stringify(b)).toThrow(/user-data/);
  });

  it('runs: writes the env file and key, installs the boot.d service and starts the agent once', async () => {
    const root = tempDir();
    prepareRoot(root);
    const bin = fakeBin(root, false);
    const res = runSh(root, ['-c', sandboxed(script, root)], searchPath(bin));
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toContain(`agent installed as ${root}/etc/wo/boot.d/agent.sh`);

    const env = join(root, 'etc', 'wo', 'agent.env');
    expect(readFileSync(env, 'utf8')).toBe(
      `WO_PLATFORM_URL='${input.platformUrl}'\nWO_BOOTSTRAP_TOKEN='${input.bootstrapToken}'\n`,
    );
    expect(statSync(env).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, 'root', '.ssh')).mode & 0o777).toBe(0o700);
    const keys = join(root, 'root', '.ssh', 'authorized_keys');
    expect(statSync(keys).mode & 0o777).toBe(0o600);
    expect(readFileSync(keys, 'utf8')).toBe(`${publicKey}\n`);
    expect(existsSync(join(root, 'configs'))).toBe(true);
    // The agent's private state dir: root-only, outside the files API's roots.
    expect(statSync(join(root, 'var', 'lib', 'wo')).mode & 0o777).toBe(0o700);

    // The agent got exactly the two variables, from the env file.
    const calls = join(root, 'node-calls');
    // `>>` creates the file before printf writes to it: wait for a whole line, not the file.
    await until(() => agentStarts(calls).length === 1);
    const pidFile = join(root, 'run', 'wo-agent.pid');
    await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    pids.push(pid);
    expect(readFileSync(calls, 'utf8')).toBe(
      `${root}/opt/agent/agent.mjs|${input.platformUrl}|${input.bootstrapToken}\n`,
    );

    // "Next boot" while the agent still runs: the boot script sees it and starts no second one.
    // Its trace proves it left at the guard; the start it skipped would be asynchronous.
    const bootScript = join(root, 'etc', 'wo', 'boot.d', 'agent.sh');
    const again = runSh(root, ['-x', bootScript], searchPath(bin));
    expect(again.status).toBe(0);
    expect(again.stderr.trimEnd().split('\n').at(-1)).toBe('+ exit 0');
    expect(again.stderr).not.toContain('+ sh -c');
    expect(agentStarts(calls)).toHaveLength(1);

    // After a real reboot the old agent is gone: the boot script starts it again.
    process.kill(pid, 'SIGKILL');
    // Gone (or a zombie awaiting its reaper): what the boot script's guard looks at.
    await until(() => {
      try {
        return !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('agent.mjs');
      } catch {
        return true;
      }
    });
    const reboot = runSh(root, [bootScript], searchPath(bin));
    expect(reboot.status).toBe(0);
    await until(() => agentStarts(calls).length === 2);
    pids.push(Number(readFileSync(pidFile, 'utf8').trim()));
  });

  it('runs: with systemd, installs and enables a unit using the env file', () => {
    const root = tempDir();
    prepareRoot(root);
    mkdirSync(join(root, 'run', 'systemd', 'system'), { recursive: true });
    mkdirSync(join(root, 'etc', 'systemd', 'system'), { recursive: true });
    const bin = fakeBin(root, true);
    const res = runSh(root, ['-c', sandboxed(script, root)], searchPath(bin));
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(readFileSync(join(root, 'systemctl-calls'), 'utf8')).toBe(
      'daemon-reload\nenable --now wo-agent.service\n',
    );
    const unit = readFileSync(join(root, 'etc', 'systemd', 'system', 'wo-agent.service'), 'utf8');
    expect(unit).toContain(`EnvironmentFile=${root}/etc/wo/agent.env`);
    expect(unit).toContain(`ExecStart=${bin}/node ${root}/opt/agent/agent.mjs`);
    expect(unit).toContain('WantedBy=multi-user.target');
    // The platform owns every restart: systemd never brings a dead agent back in place.
    expect(unit).toContain('Restart=no');
    expect(unit).not.toContain(input.bootstrapToken);
    expect(existsSync(join(root, 'etc', 'wo', 'boot.d', 'agent.sh'))).toBe(false);
    expect(existsSync(join(root, 'node-calls'))).toBe(false); // systemd starts it, not the script
  });

  it('fails loudly when the image has no agent', () => {
    const root = tempDir();
    const bin = fakeBin(root, false);
    const res = runSh(root, ['-c', sandboxed(script, root)], searchPath(bin));
    expect(res.status).toBe(1);
    expect(res.stderr).toContain('agent.mjs is missing from the image');
    expect(existsSync(join(root, 'etc', 'wo', 'agent.env'))).toBe(false);
  });
});

describe('EC2 user-data: the data volume at /workspace', () => {
  const volumeId = 'vol-0123456789abcdef0';
  const script = renderUserData({ ...input, dataVolumeId: volumeId });

  /** Also moves the device paths the script waits for under `root`/dev (/dev/null stays real). */
  function sandboxedWithDevices(root: string): string {
    return sandboxed(script, root).replace(/(^|[\s'"=(])\/dev\/(disk|sdf|xvdf)/gm, `$1${root}/dev/$2`);
  }

  /** Fake blkid (exit `blkidExit`), mkfs and mount that record their arguments. */
  function diskTools(root: string, bin: string, blkidExit: number): void {
    for (const [name, exit] of [
      ['blkid', blkidExit],
      ['mkfs', 0],
      ['mount', 0],
    ] as const) {
      writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> "${root}/disk-calls"\nexit ${exit}\n`);
      chmodSync(join(bin, name), 0o755);
    }
  }

  const calls = (root: string): string[] =>
    existsSync(join(root, 'disk-calls'))
      ? readFileSync(join(root, 'disk-calls'), 'utf8').split('\n').filter(Boolean)
      : [];

  function attach(root: string, name: string): string {
    const device = join(root, 'dev', name);
    mkdirSync(join(device, '..'), { recursive: true });
    writeFileSync(device, '');
    return device;
  }

  it('names the volume once and refuses an id that is not one', () => {
    expect(script).toContain(`WO_DATA_VOLUME='${volumeId}'\n`);
    expect(script).toContain('/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0');
    expect(script).toContain('RequiresMountsFor=/workspace');
    expect(shellSyntaxErrors(script)).toBe('');
    for (const bad of ["vol-1'; reboot; '", 'vol-XYZ12345', 'i-0123456789abcdef0', ''])
      expect(() => renderUserData({ ...input, dataVolumeId: bad }), bad).toThrow(/user-data: data volume id/);
  });

  it('formats a blank volume, mounts it at /workspace and only then starts the agent', async () => {
    const root = tempDir();
    prepareRoot(root);
    const bin = fakeBin(root, false);
    diskTools(root, bin, 2);
    const device = attach(root, `disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0`);
    const res = runSh(root, ['-c', sandboxedWithDevices(root)], searchPath(bin));
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(calls(root)).toEqual([
      `blkid -p ${device}`,
      `mkfs -t ext4 -q ${device}`,
      `mount ${device} ${root}/workspace`,
    ]);
    expect(readFileSync(join(root, 'etc', 'fstab'), 'utf8')).toBe(
      `${device} ${root}/workspace ext4 defaults,nofail 0 2\n`,
    );
    expect(res.stdout).toContain(`data volume ${volumeId} mounted at ${root}/workspace`);
    await until(() => existsSync(join(root, 'node-calls')));
    pids.push(Number(readFileSync(join(root, 'run', 'wo-agent.pid'), 'utf8').trim()));
  });

  it("keeps a volume's filesystem (the next generation's boot), by its attachment name too", () => {
    const root = tempDir();
    prepareRoot(root);
    const bin = fakeBin(root, true);
    mkdirSync(join(root, 'run', 'systemd', 'system'), { recursive: true });
    mkdirSync(join(root, 'etc', 'systemd', 'system'), { recursive: true });
    diskTools(root, bin, 0);
    const device = attach(root, 'sdf');
    const res = runSh(root, ['-c', sandboxedWithDevices(root)], searchPath(bin));
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(calls(root)).toEqual([`blkid -p ${device}`, `mount ${device} ${root}/workspace`]);
  });

  it('formats nothing and starts no agent when blkid cannot tell', () => {
    const root = tempDir();
    prepareRoot(root);
    const bin = fakeBin(root, false);
    diskTools(root, bin, 4);
    const device = attach(root, 'xvdf');
    const res = runSh(root, ['-c', sandboxedWithDevices(root)], searchPath(bin));
    expect(res.status).toBe(1);
    expect(res.stderr).toContain('blkid failed (4); not formatting it');
    expect(calls(root)).toEqual([`blkid -p ${device}`]);
    expect(existsSync(join(root, 'node-calls'))).toBe(false);
    expect(existsSync(join(root, 'etc', 'wo', 'boot.d', 'agent.sh'))).toBe(false);
  });
});
