/** Plugin archives as an uploader builds them (tar.gz), for tests of uploaded plugins. */
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export type Entry = { name: string; type?: tar.Header['type']; content?: string | Buffer; linkname?: string };

export async function tarGz(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = Buffer.from(type === 'file' ? (e.content ?? '') : '');
    pack.entry({ name: e.name, type, linkname: e.linkname, size: body.length }, body);
  }
  pack.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks));
}

/** The plugin.yaml entry naming the plugin. */
export const manifest = (name: string, version = '1.0.0'): Entry => ({
  name: 'plugin.yaml',
  content: `name: ${name}\nversion: ${version}\n`,
});
