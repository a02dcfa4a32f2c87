/**
 * Reads one file out of a container (a workspace container, or an ec2-sim VM) through the archive
 * API, for what the files API deliberately does not serve (the agent's state dir).
 */
import type Dockerode from 'dockerode';
import tar from 'tar-stream';

export interface ContainerFile {
  content: Buffer;
  /** Permission bits from the archive header. */
  mode: number;
}

export async function readContainerFile(
  docker: Dockerode,
  container: string,
  path: string,
): Promise<ContainerFile> {
  const archive = await docker.getContainer(container).getArchive({ path });
  const ex = tar.extract();
  return new Promise<ContainerFile>((resolve, reject) => {
    let found: ContainerFile | undefined;
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        found ??= { content: Buffer.concat(chunks), mode: (header.mode ?? 0) & 0o777 };
        next();
      });
      stream.on('error', reject);
    });
    ex.on('finish', () => (found ? resolve(found) : reject(new Error(`no entry for ${path}`))));
    ex.on('error', reject);
    archive.pipe(ex);
  });
}
