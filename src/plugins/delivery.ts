/**
 * Live delivery into `/configs/plugins/<name>` of a running workspace, through backend file calls
 * (docker: exec in the container; EC2: SFTP over the generation's key): the files API's writes and
 * one removeTree, both proven on both backends by the parity suite.
 */
import type { WorkspaceBackend } from '../backends/backend.js';
import type { PluginFile } from './schema.js';

/** Written last: the agent reports it, so a report names the install it saw whole. */
export const INSTALL_ID_FILE = '.wo-install-id';

export const pluginDir = (name: string): string => `plugins/${name}`;

/**
 * Removes the plugin folder in one backend call, walked on the workspace side without following any
 * link: whatever the plugin or a terminal left in it (any depth, links, FIFOs, sockets) goes, and a
 * folder that is itself a link goes as a link. A folder that is not there is already removed. The
 * folder itself goes last, so an uninstall settles only once it is gone (the agent reports the
 * plugin until then), and an install only on its own id, written after the removal.
 */
export async function removePluginFolder(
  backend: WorkspaceBackend,
  workspaceId: string,
  generation: number,
  name: string,
): Promise<void> {
  await backend.removeTree(workspaceId, generation, '/configs', pluginDir(name));
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
