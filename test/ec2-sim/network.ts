/**
 * The Docker network that plays the VPC: subnet = the VPC CIDR (moto's default VPC is
 * 172.31.0.0/16), gateway = the last usable address (172.31.255.254), not .1: moto hands out
 * subnet addresses from the bottom (172.31.0.4, .5, …), the top one is never an instance's.
 * The gateway is the host as seen from the instances (`platformHost`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';

export interface SimNetwork {
  name: string;
  /** IPv4 CIDR, e.g. 172.31.0.0/16. */
  subnet: string;
  /** The host's address on the network. */
  gateway: string;
}

export const DEFAULT_NETWORK_NAME = 'wo-ec2-sim';

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function parseCidr(cidr: string): { base: number; prefix: number; size: number } {
  const [ip, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  if (ip === undefined || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
    throw new Error(`not a usable IPv4 CIDR: ${cidr}`);
  }
  const size = 2 ** (32 - prefix);
  const base = ipToInt(ip) - (ipToInt(ip) % size);
  return { base, prefix, size };
}

/** The last usable address of a subnet: 172.31.0.0/16 → 172.31.255.254. */
export function lastUsableAddress(cidr: string): string {
  const { base, size } = parseCidr(cidr);
  return intToIp(base + size - 2);
}

export function cidrContains(cidr: string, ip: string): boolean {
  const { base, size } = parseCidr(cidr);
  let n: number;
  try {
    n = ipToInt(ip);
  } catch {
    return false;
  }
  return n > base && n < base + size - 1;
}

function cidrsOverlap(a: string, b: string): boolean {
  try {
    const x = parseCidr(a);
    const y = parseCidr(b);
    return x.base < y.base + y.size && y.base < x.base + x.size;
  } catch {
    return false;
  }
}

interface NetworkInfo {
  Name: string;
  IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string }> };
}

/**
 * Creates the network, or reuses an existing one with the same name and subnet (its gateway is
 * whatever it was created with). Refuses a same-named network with another subnet, and names the
 * network in the way when the subnet overlaps another one.
 */
export async function ensureSimNetwork(
  docker: Dockerode,
  want: { name?: string; subnet: string; gateway?: string },
  log: (line: string) => void = () => undefined,
): Promise<SimNetwork> {
  const name = want.name ?? DEFAULT_NETWORK_NAME;
  const gateway = want.gateway ?? lastUsableAddress(want.subnet);
  if (!cidrContains(want.subnet, gateway)) throw new Error(`gateway ${gateway} is not inside ${want.subnet}`);

  const inspect = async (): Promise<SimNetwork | null> => {
    let info: NetworkInfo;
    try {
      info = (await docker.getNetwork(name).inspect()) as NetworkInfo;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return null;
      throw err;
    }
    const config = info.IPAM?.Config?.find((c) => c.Subnet === want.subnet);
    if (!config) {
      const have = (info.IPAM?.Config ?? []).map((c) => c.Subnet).join(', ') || 'none';
      throw new Error(
        `docker network ${name} exists with subnet ${have}, not ${want.subnet}: remove it (docker network rm ${name}) or pick another name`,
      );
    }
    return { name, subnet: want.subnet, gateway: config.Gateway ?? gateway };
  };

  const existing = await inspect();
  if (existing) {
    log(`network ${name} (${existing.subnet}, gateway ${existing.gateway}) reused`);
    return existing;
  }
  try {
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      IPAM: { Driver: 'default', Config: [{ Subnet: want.subnet, Gateway: gateway }] },
      Labels: { 'wo.ec2-sim': '1' },
    });
    log(`network ${name} created (${want.subnet}, gateway ${gateway})`);
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    // Created concurrently by another sim: use it.
    const raced = status === 409 ? await inspect() : null;
    if (raced) return raced;
    const message = err instanceof Error ? err.message : String(err);
    if (/overlap/i.test(message)) {
      const others = (await docker.listNetworks()) as NetworkInfo[];
      const culprits = others
        .filter((n) => (n.IPAM?.Config ?? []).some((c) => c.Subnet && cidrsOverlap(c.Subnet, want.subnet)))
        .map((n) => `${n.Name} (${(n.IPAM?.Config ?? []).map((c) => c.Subnet).join(', ')})`);
      throw new Error(
        `cannot create docker network ${name} with ${want.subnet}: it overlaps ${culprits.join(', ') || 'another network'}; ` +
          'remove that network or pass its name as the sim network',
        { cause: err },
      );
    }
    throw err;
  }
  return { name, subnet: want.subnet, gateway };
}

export interface SubnetClaim {
  cidr: string;
  release(): void;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims the first subnet CIDR (of `candidates`, in order) that no other live sim on this host has
 * claimed. Several sims (./dev up --ec2-sim, test runs) share one Docker network, each with its own
 * moto, and every moto hands out the same addresses from the bottom of a subnet (172.31.0.4, …):
 * two sims launching into the same subnet would ask Docker for the same IP. A claim is a file
 * holding the owner's pid; a dead owner's claim is taken over.
 */
export function claimSubnet(network: string, candidates: string[], owner: string): SubnetClaim {
  const dir = path.join(os.tmpdir(), 'wo-ec2-sim-claims');
  fs.mkdirSync(dir, { recursive: true });
  for (const cidr of candidates) {
    const file = path.join(dir, `${network}_${cidr.replace(/[^0-9.]/g, '_')}`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, `${process.pid} ${owner}\n`, { flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = Number(fs.readFileSync(file, 'utf8').split(' ')[0]);
        if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) break; // taken: next CIDR
        fs.rmSync(file, { force: true }); // stale: take it over
        continue;
      }
      const release = (): void => {
        process.off('exit', release);
        try {
          if (fs.readFileSync(file, 'utf8').startsWith(`${process.pid} `)) fs.rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
      process.once('exit', release);
      return { cidr, release };
    }
  }
  throw new Error(
    `every subnet (${candidates.join(', ')}) is claimed by another live ec2-sim on this host (claims in ${dir})`,
  );
}
