/**
 * A shell inside the container that holds a workspace (test side only, beside the product's own
 * paths): the generation's container on docker, the simulator's VM container on ec2. Writing to
 * `/proc/1/fd/1` there prints to the backend's console (docker logs / GetConsoleOutput).
 */
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import type { BackendKind } from '../../src/backends/backend.js';
import { instancesOf } from './backends.js';

/** The container that holds a generation: its container, or the simulator's VM of its instance. */
export async function hostContainer(
  backend: BackendKind,
  docker: Dockerode,
  id: string,
  generation: number,
): Promise<Dockerode.Container> {
  if (backend === 'docker') return docker.getContainer(`ws-${id}-g${generation}`);
  const instance = (await instancesOf(id)).find(
    (i) => i.Tags?.find((tag) => tag.Key === 'Generation')?.Value === String(generation),
  );
  if (!instance?.InstanceId) throw new Error(`no instance for ${id} g${generation}`);
  return docker.getContainer(`ec2-${instance.InstanceId}`);
}

/** Runs argv inside the workspace's container (test side only), answering its exit code and output. */
export async function run(
  container: Dockerode.Container,
  argv: string[],
): Promise<{ code: number; out: string }> {
  const exec = await container.exec({ Cmd: argv, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => out.push(c));
  container.modem.demuxStream(stream, sink, sink);
  await new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
  const info = await exec.inspect();
  return { code: info.ExitCode ?? -1, out: Buffer.concat(out).toString('utf8') };
}

/** Runs a shell script inside the workspace's container (test side only). */
export function sh(container: Dockerode.Container, script: string): Promise<{ code: number; out: string }> {
  return run(container, ['sh', '-c', script]);
}
