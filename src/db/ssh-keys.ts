import type { SshKeyPair, SshKeyStore } from '../backends/ssh-keys.js';
import type { SecretBox } from '../security/secrets.js';
import type { Queryable } from './queryable.js';

/** The EC2 backend's key store in PostgreSQL; private keys are sealed with the secrets key. */
export class DbSshKeyStore implements SshKeyStore {
  constructor(
    private readonly db: Queryable,
    private readonly box: SecretBox,
  ) {}

  async put(workspaceId: string, generation: number, pair: SshKeyPair): Promise<void> {
    // First writer wins: a retried activity must keep the key already baked into user-data.
    const sealed = this.box.seal(pair.privateKey);
    await this.db.query(
      `INSERT INTO ssh_keys (workspace_id, generation, private_key_enc, key_id, public_key)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_id, generation) DO NOTHING`,
      [workspaceId, generation, sealed.value, sealed.keyId, pair.publicKey],
    );
  }

  async get(workspaceId: string, generation: number): Promise<SshKeyPair | null> {
    const { rows } = await this.db.query<{
      private_key_enc: string;
      key_id: string | null;
      public_key: string;
    }>(
      `SELECT private_key_enc, key_id, public_key FROM ssh_keys WHERE workspace_id = $1 AND generation = $2`,
      [workspaceId, generation],
    );
    const row = rows[0];
    return row
      ? { privateKey: this.box.open(row.private_key_enc, row.key_id), publicKey: row.public_key }
      : null;
  }

  async getHostKey(instanceId: string): Promise<string | null> {
    const { rows } = await this.db.query<{ host_key_sha256: string }>(
      `SELECT host_key_sha256 FROM ssh_host_keys WHERE instance_id = $1`,
      [instanceId],
    );
    return rows[0]?.host_key_sha256 ?? null;
  }

  async putHostKey(instanceId: string, hostKeySha256: string): Promise<void> {
    await this.db.query(
      `INSERT INTO ssh_host_keys (instance_id, host_key_sha256) VALUES ($1, $2) ON CONFLICT (instance_id) DO NOTHING`,
      [instanceId, hostKeySha256],
    );
  }

  async removeAll(workspaceId: string): Promise<void> {
    await this.db.query(`DELETE FROM ssh_keys WHERE workspace_id = $1`, [workspaceId]);
  }

  async removeGeneration(workspaceId: string, generation: number): Promise<void> {
    await this.db.query(`DELETE FROM ssh_keys WHERE workspace_id = $1 AND generation = $2`, [
      workspaceId,
      generation,
    ]);
  }

  async removeHostKeys(instanceIds: readonly string[]): Promise<void> {
    if (instanceIds.length === 0) return;
    await this.db.query(`DELETE FROM ssh_host_keys WHERE instance_id = ANY($1::text[])`, [[...instanceIds]]);
  }
}
