/**
 * An agent dying on its own, the way a crash or the kernel's OOM killer ends it: SIGKILL to the
 * container's main process from the host. Not `docker kill`: the daemon records an API kill as a
 * manual stop and never applies a restart policy after it, so it would hide exactly the in-place
 * restart these tests are about.
 */
import { readFileSync } from 'node:fs';
import type Dockerode from 'dockerode';

/** The host pid of a running container's main process, checked to be the agent. */
async function agentPid(docker: Dockerode, container: string): Promise<number> {
  const pid = (await docker.getContainer(container).inspect()).State.Pid;
  if (!pid) throw new Error(`container ${container} has no running main process`);
  // The tests run in the daemon's PID namespace; make sure the pid is the agent before signalling it.
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch (err) {
    throw new Error(`pid ${pid} of ${container} is not visible here (another PID namespace?)`, {
      cause: err,
    });
  }
  if (!cmdline.includes('agent')) {
    throw new Error(`pid ${pid} of ${container} is not the agent: ${cmdline.replace(/\0/g, ' ')}`);
  }
  return pid;
}

/** SIGKILLs the main process (the agent) of a running container; answers its host pid. */
export async function killContainerAgent(docker: Dockerode, container: string): Promise<number> {
  const pid = await agentPid(docker, container);
  process.kill(pid, 'SIGKILL');
  return pid;
}

/**
 * Freezes (SIGSTOP) or thaws (SIGCONT) every process of a container (its init and the agent under
 * it): the agent keeps its socket but answers nothing. Not `docker pause`: the cgroup freezer can
 * fail under load ("unable to freeze"), a signal cannot.
 */
export async function freezeContainerAgent(
  docker: Dockerode,
  container: string,
  frozen: boolean,
): Promise<void> {
  const top = (await docker.getContainer(container).top({ ps_args: '-o pid' })) as {
    Processes?: string[][];
  };
  const pids = (top.Processes ?? []).map((row) => Number(row[0])).filter((pid) => pid > 0);
  if (pids.length === 0) throw new Error(`container ${container} has no processes to signal`);
  for (const pid of pids) process.kill(pid, frozen ? 'SIGSTOP' : 'SIGCONT');
}
