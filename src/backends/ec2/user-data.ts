/**
 * The EC2 user-data script: the only thing an instance is launched with.
 *
 * It carries exactly four values — the platform URL, the single-use bootstrap token, the
 * generation's SSH public key and the id of the workspace's data volume (mounted at /workspace) —
 * plus the steps that turn the agent baked into the image (/opt/agent/agent.mjs) into a boot
 * service. No secret, no config.yaml, no template file: the agent
 * fetches all of that from the platform with the token (the same bootstrap path as Docker, where the
 * two values arrive as environment variables).
 *
 * Why the bootstrap token may sit in user-data (readable through the instance metadata service and
 * DescribeInstanceAttribute for the life of the instance): it is single-use (the platform marks it
 * used on the first bundle fetch; a lost answer may be fetched again for a short window, until the
 * agent registers), short-lived (it expires after the bootstrap TTL even if never used), scoped to
 * one workspace generation, revoked once a newer generation is prepared, and useless once
 * consumed — after a reboot the agent re-registers with the workspace token it saved in /var/lib/wo
 * (root-only, outside the files API's roots), never with this one. Whoever reads it later holds a
 * dead token.
 *
 * User-data runs on the first boot only (cloud-init semantics; ec2-sim does the same), so the agent
 * is installed as a service that comes back after stop/start: a systemd unit where systemd exists,
 * otherwise `/etc/wo/boot.d/agent.sh`, which the image's init (ec2-sim's VM image) runs at every
 * boot. Either way it is also started right away on this first boot.
 */

import { DATA_DEVICE } from './data-volume.js';

export interface UserDataInput {
  platformUrl: string;
  bootstrapToken: string;
  /** `ssh-ed25519 AAAA… comment`, appended to root's authorized_keys. */
  sshPublicKey: string;
  /**
   * The workspace's data volume (data-volume.ts), mounted at /workspace before the agent starts;
   * formatted only when blank. Unset: /workspace is a plain directory of the root volume (the
   * provision bench's raw baseline launches so).
   */
  dataVolumeId?: string;
}

/** How long the script waits for the data volume to be attached (the platform attaches it once
 * the instance runs; the boot deadline usually ends the wait first). */
export const DATA_DEVICE_WAIT_S = 600;

/** Where the script puts things; exported for tests and for the image/simulator side. */
export const USER_DATA_PATHS = {
  agent: '/opt/agent/agent.mjs',
  env: '/etc/wo/agent.env',
  bootDir: '/etc/wo/boot.d',
  bootScript: '/etc/wo/boot.d/agent.sh',
  systemdUnit: '/etc/systemd/system/wo-agent.service',
  pidFile: '/run/wo-agent.pid',
  /** The agent's private state (saved bundle, secrets.env); kept across stop/start. */
  stateDir: '/var/lib/wo',
} as const;

/**
 * Every value is embedded single-quoted, in the script and in the env file (which both systemd's
 * EnvironmentFile and `sh`'s `.` read). Refusing quotes, backslashes and control characters keeps
 * that quoting trivially correct: nothing in a value can end the quote or start a new line.
 */
function safeValue(name: string, value: string, pattern?: RegExp): string {
  if (value === '') throw new Error(`user-data: ${name} is empty`);
  // eslint-disable-next-line no-control-regex
  if (/['"\\`$\x00-\x1f\x7f]/.test(value)) {
    throw new Error(`user-data: ${name} contains a quote, backslash, $ or control character`);
  }
  if (pattern && !pattern.test(value)) throw new Error(`user-data: ${name} is malformed`);
  return value;
}

export function renderUserData(input: UserDataInput): string {
  const url = safeValue('platform URL', input.platformUrl, /^https?:\/\/\S+$/);
  try {
    new URL(url);
  } catch {
    throw new Error('user-data: platform URL is not a valid URL');
  }
  const token = safeValue('bootstrap token', input.bootstrapToken, /^[A-Za-z0-9._~:+=/-]+$/);
  const publicKey = safeValue(
    'SSH public key',
    input.sshPublicKey.trim(),
    /^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+( [\x21-\x7e ]*)?$/,
  );
  const p = USER_DATA_PATHS;
  const dataVolume =
    input.dataVolumeId === undefined
      ? undefined
      : safeValue('data volume id', input.dataVolumeId, /^vol-[0-9a-f]{8,32}$/);

  return `#!/bin/sh
# workspace-orchestrator user-data: runs once, on the instance's first boot.
# Holds only the platform URL, a single-use bootstrap token and the SSH public key. The token is
# acceptable here: it is single-use, expires after a short TTL and is useless once the agent has
# consumed it (reboots re-register with the workspace token saved in /var/lib/wo).
set -eu
umask 077

WO_PLATFORM_URL='${url}'
WO_BOOTSTRAP_TOKEN='${token}'
WO_SSH_PUBLIC_KEY='${publicKey}'

log() { echo "wo-user-data: $*"; }

if [ ! -f ${p.agent} ]; then
  log "${p.agent} is missing from the image; cannot start the workspace agent" >&2
  exit 1
fi

# SSH access for the platform (file reads, terminal) with this generation's key.
mkdir -p /root/.ssh
chmod 700 /root/.ssh
touch /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
printf '%s\\n' "$WO_SSH_PUBLIC_KEY" >> /root/.ssh/authorized_keys

# The agent's environment, readable by root only.
mkdir -p /etc/wo ${p.bootDir} /configs /workspace ${p.stateDir}
chmod 700 /etc/wo ${p.stateDir}
printf "WO_PLATFORM_URL='%s'\\nWO_BOOTSTRAP_TOKEN='%s'\\n" "$WO_PLATFORM_URL" "$WO_BOOTSTRAP_TOKEN" > ${p.env}
chmod 600 ${p.env}
${dataVolume === undefined ? '' : dataVolumeSteps(dataVolume)}
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  umask 022
  NODE_BIN=$(command -v node || echo /usr/bin/node)
  cat > ${p.systemdUnit} <<EOF
[Unit]
Description=workspace-orchestrator agent
Wants=network-online.target
After=network-online.target
RequiresMountsFor=/workspace

[Service]
EnvironmentFile=${p.env}
WorkingDirectory=/workspace
ExecStart=$NODE_BIN ${p.agent}
# Never restarted in place: the platform's health sweep notices a dead agent and boots a new
# generation, counted by its restart policy (as a docker workspace's container, restart policy no).
Restart=no
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable --now wo-agent.service
  log "agent installed as systemd unit wo-agent.service"
else
  # No systemd: the image's init runs ${p.bootDir}/*.sh at every boot.
  cat > ${p.bootScript} <<'EOF'
#!/bin/sh
# Starts the workspace agent once per boot (installed by user-data). Its output goes to the console.
if [ -f ${p.pidFile} ]; then
  pid=$(cat ${p.pidFile})
  if [ -n "$pid" ] && grep -q agent.mjs "/proc/$pid/cmdline" 2>/dev/null; then exit 0; fi
fi
NODE_BIN=$(command -v node || echo /usr/bin/node)
mkdir -p "$(dirname ${p.pidFile})"
set -a
. ${p.env}
set +a
cd /workspace || cd /
sh -c 'echo $$ > ${p.pidFile}; exec "$0" ${p.agent}' "$NODE_BIN" </dev/null &
EOF
  chmod 700 ${p.bootScript}
  sh ${p.bootScript}
  log "agent installed as ${p.bootScript}"
fi
log "agent started"
`;
}

/**
 * Mounts the data volume at /workspace. The platform attaches it once the instance runs, so it may
 * show up after this script starts: wait for it (under its NVMe name on Nitro instances, its
 * attachment name on others). A filesystem on it is kept: only a blank volume (blkid finds nothing,
 * exit 2) is formatted; any other answer stops the boot rather than risk formatting the user's data.
 */
export function dataVolumeSteps(volumeId: string): string {
  const nvme = `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`;
  return `
# The workspace's data volume (kept across restarts) at /workspace, before the agent starts.
WO_DATA_VOLUME='${volumeId}'
wo_data_device() {
  for d in ${nvme} ${DATA_DEVICE} /dev/xvdf; do
    if [ -e "$d" ]; then echo "$d"; return 0; fi
  done
  return 1
}
waited=0
until dev=$(wo_data_device); do
  if [ "$waited" -ge ${DATA_DEVICE_WAIT_S * 5} ]; then
    log "data volume $WO_DATA_VOLUME not attached after ${DATA_DEVICE_WAIT_S} s; not starting the agent" >&2
    exit 1
  fi
  sleep 0.2
  waited=$((waited + 1))
done
set +e
blkid -p "$dev" >/dev/null 2>&1
rc=$?
set -e
case "$rc" in
  0) log "data volume $WO_DATA_VOLUME at $dev: keeping its filesystem" ;;
  2) log "data volume $WO_DATA_VOLUME at $dev: blank, formatting it"; mkfs -t ext4 -q "$dev" ;;
  *) log "data volume $WO_DATA_VOLUME at $dev: blkid failed ($rc); not formatting it" >&2; exit 1 ;;
esac
mount "$dev" /workspace
printf '%s /workspace ext4 defaults,nofail 0 2\\n' "$dev" >> /etc/fstab
log "data volume $WO_DATA_VOLUME mounted at /workspace"
`;
}
