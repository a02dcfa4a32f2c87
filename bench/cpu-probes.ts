/**
 * CPU time consumed so far (ms, user + system, all threads) by the parties of a bench, read from
 * /proc and the cgroup filesystem (Linux only): a process, a process with its children
 * (PostgreSQL's postmaster and backends), and a container's cgroup. Read before and after a block,
 * the difference is what that party spent on it.
 */
import { readFile, readdir } from 'node:fs/promises';
import type Dockerode from 'dockerode';

/** USER_HZ: /proc/PID/stat counts CPU in these ticks (100 on every Linux Node runs on). */
const TICK_MS = 10;

export interface CpuProbe {
  name: string;
  /** Cumulative CPU ms, or null when the party is gone / unreadable. */
  read(): Promise<number | null>;
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, ms. */
  own: number;
  /** cutime + cstime (reaped children), ms. */
  children: number;
}

async function procStat(pid: number): Promise<ProcStat | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const n = (i: number) => Number(f[i - 3]);
    return { pid, ppid: n(4), own: (n(14) + n(15)) * TICK_MS, children: (n(16) + n(17)) * TICK_MS };
  } catch {
    return null;
  }
}

async function allPids(): Promise<number[]> {
  return (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
}

async function cmdline(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  } catch {
    return [];
  }
}

/** The first process whose argv satisfies `match`, or null. */
export async function findProcess(match: (argv: string[]) => boolean): Promise<number | null> {
  for (const pid of await allPids()) if (match(await cmdline(pid))) return pid;
  return null;
}

export function processProbe(name: string, pid: number): CpuProbe {
  return { name, read: async () => (await procStat(pid))?.own ?? null };
}

/** `pid`'s direct children: the kernel's list (cheap) where it has one, else a scan of /proc. */
async function childrenOf(pid: number): Promise<number[]> {
  try {
    return (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8'))
      .split(' ')
      .filter(Boolean)
      .map(Number);
  } catch {
    const stats = await Promise.all((await allPids()).map(procStat));
    return stats.filter((s): s is ProcStat => s !== null && s.ppid === pid).map((s) => s.pid);
  }
}

/** `pid` and its direct children (a postmaster and its backends), plus children already reaped. */
export function treeProbe(name: string, pid: number): CpuProbe {
  return {
    name,
    read: async () => {
      const root = await procStat(pid);
      if (!root) return null;
      const kids = await Promise.all((await childrenOf(pid)).map(procStat));
      return root.own + root.children + kids.reduce((sum, k) => sum + (k?.own ?? 0), 0);
    },
  };
}

/** The container (docker backend or ec2-sim VM) that serves `endpoint`, or null. */
export async function findContainer(docker: Dockerode, endpoint: string): Promise<string | null> {
  const { hostname, port } = new URL(endpoint);
  for (const c of await docker.listContainers()) {
    const published = c.Ports.some((p) => String(p.PublicPort) === port && p.IP === hostname);
    const onNetwork = Object.values(c.NetworkSettings.Networks).some((n) => n.IPAddress === hostname);
    if (published || onNetwork) return c.Id;
  }
  return null;
}

/** The container's cgroup CPU (cgroup v1 cpuacct.usage or v2 cpu.stat), found via its init's /proc. */
export async function containerProbe(
  name: string,
  docker: Dockerode,
  containerId: string,
): Promise<CpuProbe | null> {
  const pid = (await docker.getContainer(containerId).inspect()).State.Pid;
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  const v1 = lines.find((l) => /^\d+:[^:]*\bcpuacct\b[^:]*:/.test(l));
  const v2 = lines.find((l) => l.startsWith('0::'));
  let read: () => Promise<number>;
  if (v1) {
    const file = `/sys/fs/cgroup/cpuacct${v1.slice(v1.lastIndexOf(':') + 1)}/cpuacct.usage`;
    read = async () => Number(await readFile(file, 'utf8')) / 1e6;
  } else if (v2 && v2 !== '0::/') {
    const file = `/sys/fs/cgroup${v2.slice(3)}/cpu.stat`;
    read = async () => Number(/usage_usec (\d+)/.exec(await readFile(file, 'utf8'))?.[1]) / 1e3;
  } else {
    return null;
  }
  await read();
  return {
    name,
    read: async () => {
      try {
        return await read();
      } catch {
        return null;
      }
    },
  };
}
