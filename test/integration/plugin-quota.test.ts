/**
 * How much a workspace's plugins may hold: every plugin is in each of its boot bundles, so an
 * uploader could otherwise grow them (2 MiB archives, any number of names) until a bundle no longer
 * fits the API's memory. Past PLUGINS_PER_WORKSPACE_MAX plugins, or PLUGINS_MAX_BYTES of their
 * files, an install answers 403 `quota_exceeded` and nothing is recorded; concurrent installs
 * cannot overshoot; a re-install of a held plugin counts its new files in place of its old ones; an
 * uninstall makes room. Stopped workspaces (rows only): an accepted install settles at once.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { manifest, tarGz } from '../support/plugin-archives.js';
import { insertWorkspaceRow, useStack } from '../support/stack.js';

describe('plugin quota (PLUGINS_PER_WORKSPACE_MAX=3, PLUGINS_MAX_BYTES=12000)', () => {
  const t = useStack({ env: { PLUGINS_PER_WORKSPACE_MAX: '3', PLUGINS_MAX_BYTES: '12000' } });

  async function stoppedWorkspace(): Promise<string> {
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId, (i) => `plugq-${i}`);
    await t.stack.service.db.pool.query(
      `UPDATE workspaces SET status = 'stopped', generation = 1 WHERE id = $1`,
      [id],
    );
    return id;
  }
  /** Uploads plugin `name` with a file of `size` bytes. */
  const install = async (id: string, name: string, size = 10, version = '1.0.0') =>
    t.stack.api.call('POST', `/v1/workspaces/${id}/plugins`, {
      token: t.key,
      body: {
        source: {
          tarGzBase64: (
            await tarGz([manifest(name, version), { name: 'data.txt', content: 'x'.repeat(size) }])
          ).toString('base64'),
        },
      },
    });
  const names = async (id: string) =>
    (
      (await t.stack.api.call('GET', `/v1/workspaces/${id}/plugins`, { token: t.key })).body.items as {
        name: string;
      }[]
    )
      .map((p) => p.name)
      .sort();
  const settled = (id: string) =>
    waitFor(
      async () => {
        const { rows } = await t.stack.service.db.pool.query(
          `SELECT 1 FROM workspace_plugins WHERE workspace_id = $1 AND status IN ('installing', 'uninstalling')`,
          [id],
        );
        return rows.length === 0;
      },
      { timeoutMs: 30_000, describe: `the plugin requests of ${id} settled` },
    );

  it('concurrent installs of new plugins stop at the count; a re-install is free; an uninstall makes room', async () => {
    const id = await stoppedWorkspace();
    const answers = await Promise.all(['p-a', 'p-b', 'p-c', 'p-d', 'p-e', 'p-f'].map((n) => install(id, n)));
    expect(answers.filter((a) => a.status === 202)).toHaveLength(3);
    const refused = answers.filter((a) => a.status !== 202);
    expect(refused.map((a) => [a.status, a.body.error.code])).toEqual(Array(3).fill([403, 'quota_exceeded']));
    await settled(id);
    const held = await names(id);
    expect(held).toHaveLength(3);

    // A held plugin installs again (a new version) at the quota; a new name does not.
    expect((await install(id, held[0]!, 10, '2.0.0')).status).toBe(202);
    await settled(id);
    expect((await install(id, 'p-new')).status).toBe(403);
    expect(
      (await t.stack.api.call('DELETE', `/v1/workspaces/${id}/plugins/${held[1]}`, { token: t.key })).status,
    ).toBe(202);
    await settled(id);
    expect((await install(id, 'p-new')).status).toBe(202);
    await settled(id);
    expect(await names(id)).toEqual([held[0], held[2], 'p-new'].sort());
  });

  it('the files of all plugins stop at the byte quota; a re-install counts its new files, not its old', async () => {
    const id = await stoppedWorkspace();
    // Each stored file is base64 in JSON: ~5,400 bytes for 4,000.
    expect((await install(id, 'big-a', 4000)).status).toBe(202);
    await settled(id);
    const over = await install(id, 'big-b', 8000);
    expect(over.status).toBe(403);
    expect(over.body.error.code).toBe('quota_exceeded');
    expect(await names(id)).toEqual(['big-a']);
    expect((await install(id, 'big-b', 4000)).status).toBe(202);
    await settled(id);
    // big-a grown to what would not fit beside its old self and big-b: its old files do not count.
    expect((await install(id, 'big-a', 4500, '2.0.0')).status).toBe(202);
    await settled(id);
    expect((await install(id, 'big-a', 6000, '3.0.0')).status).toBe(403);
  });
});
