/**
 * Where workspaces are placed. Either way a workspace reaches the host (the platform, through the
 * network's gateway) and the outside world, and no other container, of its org or another: calls
 * between workspaces go through the platform's A2A proxy.
 *
 * - A bridge per org with inter-container communication (ICC) off: bridges are isolated from each
 *   other, and ICC off keeps an org's containers apart too. Works on any daemon, but every
 *   container start on a user-defined network costs the daemon its embedded-DNS setup (a re-exec
 *   into the container's namespace and ten iptables calls, ~40 ms: docs/benchmarks.md), and an
 *   org's first workspace waits for its network to be created (~65 ms).
 * - One shared bridge with ICC off: the same isolation, since no container on it reaches another.
 *   The daemon's default bridge (`dockerd --icc=false`) has no embedded DNS, so a start costs what
 *   a bare `docker run` does. ICC is read from the daemon at each placement: never assumed.
 *
 * Subnets are picked explicitly from a pool (default 10.213.0.0/16 in /24s, one per org): left to
 * itself the daemon hands every network a /16 from 172.17–31.x, which runs out after ~30 orgs and
 * can take the range a VPC-mirroring network (ec2-sim: 172.31.0.0/16) needs.
 */
import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import { BackendError } from '../backend.js';
import { daemonMessage, isConflict, statusCodeOf, toBackendError } from './errors.js';
import { LABEL, MANAGED_BY } from './names.js';

export interface OrgNetworkPool {
  /** IPv4 CIDR the org subnets are carved from. */
  cidr: string;
  /** Prefix length of one org's subnet (24 = 254 addresses). */
  prefix: number;
}

export const DEFAULT_ORG_NETWORK_POOL: OrgNetworkPool = { cidr: '10.213.0.0/16', prefix: 24 };

export const orgNetworkName = (orgId: string): string => `wo-org-${orgId}`;

/** The option that turns inter-container communication off on a bridge network. */
export const ICC_OPTION = 'com.docker.network.bridge.enable_icc';

/**
 * `per-org`: a bridge per org. `{ shared }`: that one network for every workspace, refused while
 * its ICC is on. `auto`: the daemon's default bridge while its ICC is off, else per org.
 */
export type WorkspaceNetworking = 'auto' | 'per-org' | { shared: string };

/** Docker's rule for network names. */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** DOCKER_WORKSPACE_NETWORK's value → a placement; throws a message naming what is wrong. */
export function parseWorkspaceNetworking(value: string): WorkspaceNetworking {
  if (value === 'auto' || value === 'per-org') return value;
  if (NETWORK_NAME.test(value)) return { shared: value };
  throw new Error(`"${value}" is neither auto, per-org nor a Docker network name`);
}

/**
 * Whether the network's containers cannot reach each other: true when ICC is off, false when it
 * is on (or unsaid: the daemon's default is on), null when there is no such network.
 */
export async function iccIsOff(docker: Dockerode, network: string): Promise<boolean | null> {
  let info: Dockerode.NetworkInspectInfo;
  try {
    info = (await docker.getNetwork(network).inspect()) as Dockerode.NetworkInspectInfo;
  } catch (err) {
    if (statusCodeOf(err) === 404) return null;
    throw toBackendError(err, `inspecting network ${network}`);
  }
  return info.Driver === 'bridge' && info.Options?.[ICC_OPTION] === 'false';
}

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

const intToIp = (n: number): string =>
  [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

/** Validates a pool; throws a message naming what is wrong (used by config parsing too). */
export function parsePool(pool: OrgNetworkPool): { base: number; count: number; size: number } {
  const [ip, bitsText] = pool.cidr.split('/');
  const bits = Number(bitsText);
  if (ip === undefined || !Number.isInteger(bits) || bits < 8 || bits > 28) {
    throw new Error(`not a usable IPv4 CIDR: ${pool.cidr}`);
  }
  if (!Number.isInteger(pool.prefix) || pool.prefix < bits || pool.prefix > 29) {
    throw new Error(`subnet prefix /${pool.prefix} does not fit in ${pool.cidr}`);
  }
  const span = 2 ** (32 - bits);
  const base = ipToInt(ip) - (ipToInt(ip) % span);
  const size = 2 ** (32 - pool.prefix);
  return { base, count: span / size, size };
}

/** The i-th subnet of the pool, e.g. 10.213.7.0/24. */
export function subnetAt(pool: OrgNetworkPool, i: number): string {
  const { base, count, size } = parsePool(pool);
  return `${intToIp(base + (i % count) * size)}/${pool.prefix}`;
}

/** Where an org's search for a free subnet starts: spread by a hash, so orgs rarely collide. */
function startIndex(orgId: string, count: number): number {
  return createHash('sha256').update(orgId).digest().readUInt32BE(0) % count;
}

/** How many occupied subnets one ensure call steps over before giving up (then a retry goes on). */
const MAX_PROBES = 64;

/**
 * The org's networks by exact name, oldest first. The daemon's duplicate-name check is racy:
 * concurrent creates can leave two networks of one name, so every caller picks the same one (the
 * oldest, then the lowest id) and refers to it by id.
 */
async function networksNamed(docker: Dockerode, name: string): Promise<Dockerode.NetworkInspectInfo[]> {
  let all: Dockerode.NetworkInspectInfo[];
  try {
    // The name filter matches substrings: keep exact matches only.
    all = await docker.listNetworks({ filters: { name: [name] } });
  } catch (err) {
    throw toBackendError(err, `listing networks named ${name}`);
  }
  return all
    .filter((n) => n.Name === name)
    .sort((a, b) => a.Created.localeCompare(b.Created) || a.Id.localeCompare(b.Id));
}

/** The canonical network's id; duplicates a race left behind are removed when unused (best effort). */
async function canonical(docker: Dockerode, name: string): Promise<string | null> {
  const [first, ...extra] = await networksNamed(docker, name);
  for (const n of extra)
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch(() => undefined);
  return first?.Id ?? null;
}

/**
 * The id of the org's network, created if missing. Idempotent and safe under concurrency: a
 * subnet another network holds is skipped, and racing creators converge on the oldest network.
 */
export async function ensureOrgNetwork(
  docker: Dockerode,
  orgId: string,
  pool: OrgNetworkPool,
): Promise<string> {
  const name = orgNetworkName(orgId);
  const existing = await canonical(docker, name);
  if (existing) return existing;
  let count: number;
  try {
    count = parsePool(pool).count;
  } catch (err) {
    throw new BackendError('permanent', `org network pool: ${(err as Error).message}`);
  }
  const start = startIndex(orgId, count);
  for (let probe = 0; probe < Math.min(count, MAX_PROBES); probe++) {
    const subnet = subnetAt(pool, start + probe);
    try {
      await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Options: { [ICC_OPTION]: 'false' },
        IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] },
        Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.orgId]: orgId },
      });
    } catch (err) {
      // Another network (another org, another tool) holds this range: try the next subnet.
      if (statusCodeOf(err) === 403 && /overlap/i.test(daemonMessage(err))) continue;
      // 409: created concurrently under this name; fall through to pick the canonical one.
      if (!isConflict(err)) throw toBackendError(err, `creating network ${name} (${subnet})`);
    }
    const id = await canonical(docker, name);
    if (id) return id;
    throw new BackendError('transient', `network ${name} vanished right after it was created`);
  }
  throw new BackendError('transient', `no free subnet for ${name} in ${pool.cidr} after ${MAX_PROBES} tries`);
}

/**
 * Removes the org's network(s) unless an endpoint still uses them (the daemon refuses then: kept,
 * not an error). Answers whether one was removed; any other failure throws (transient).
 */
export async function removeOrgNetworkIfUnused(docker: Dockerode, orgId: string): Promise<boolean> {
  let removed = false;
  for (const n of await networksNamed(docker, orgNetworkName(orgId))) {
    try {
      await docker.getNetwork(n.Id).remove();
      removed = true;
    } catch (err) {
      // 404: gone meanwhile. 403/409: active endpoints (a container of the org attached since).
      const code = statusCodeOf(err);
      if (code === 404 || code === 403 || code === 409) continue;
      throw toBackendError(err, `removing network ${n.Name}`);
    }
  }
  return removed;
}
