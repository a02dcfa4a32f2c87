/**
 * Live delivery into `/configs/plugins/<name>` of a running workspace, through the same backend
 * file calls as the files API (docker: exec in the container; EC2: SFTP over the generation's
 * key), so both backends deliver through code the files parity suite already proves.
 */
import { BackendError, type WorkspaceBackend } from '../backends/backend.js';
import { PLUGIN_MAX_DEPTH, type PluginFile } from './schema.js';

/** Written last: the agent reports it, so a report names the install it saw whole. */
export const INSTALL_ID_FILE = '.wo-install-id';

export const pluginDir = (name: string): string => `plugins/${name}`;

/** Removes the plugin folder; a folder that is not there is already removed. */
export async function removePluginFolder(
  backend: WorkspaceBackend,
  workspaceId: string,
  generation: number,
  name: string,
): Promise<void> {
  let listing;
  try {
    listing = await backend.listFiles(
      workspaceId,
      generation,
      '/configs',
      pluginDir(name),
      PLUGIN_MAX_DEPTH + 2,
      100_000,
    );
  } catch (err) {
    if (err instanceof BackendError && err.code === 'not_found') return;
    throw err;
  }
  // The install id first (the agent stops reporting this install), then the deepest entries first,
  // the folder itself last; one backend session for all of them.
  const entries = [...listing.items].sort((a, b) => {
    const rank = (p: string) => (p.endsWith(`/${INSTALL_ID_FILE}`) ? -1 : 0);
    return rank(a.path) - rank(b.path) || b.path.split('/').length - a.path.split('/').length;
  });
  await backend.deleteFiles(workspaceId, generation, '/configs', [
    ...entries.map((e) => e.path),
    pluginDir(name),
  ]);
}

/** Replaces the plugin folder with these files, the install id last. */
export async function writePluginFolder(
  backend: WorkspaceBackend,
  workspaceId: string,
  generation: number,
  name: string,
  files: PluginFile[],
  installId: string,
): Promise<void> {
  await removePluginFolder(backend, workspaceId, generation, name);
  await backend.writeFiles(workspaceId, generation, '/configs', [
    ...files.map((f) => ({
      path: `${pluginDir(name)}/${f.path}`,
      content: Buffer.from(f.contentBase64, 'base64'),
    })),
    { path: `${pluginDir(name)}/${INSTALL_ID_FILE}`, content: Buffer.from(installId) },
  ]);
}
