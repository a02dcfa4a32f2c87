/**
 * Where the EC2 backend keeps what SSH needs: the per-generation key pair it generated at provision
 * (private key encrypted at rest by the DB implementation) and the pinned host key of the instance.
 */
export interface SshKeyPair {
  /** OpenSSH private key text. */
  privateKey: string;
  /** `ssh-ed25519 AAAA… comment`, as written to authorized_keys. */
  publicKey: string;
}

export interface SshKeyStore {
  put(workspaceId: string, generation: number, pair: SshKeyPair): Promise<void>;
  get(workspaceId: string, generation: number): Promise<SshKeyPair | null>;
  /** Host key pinning: null until the first connection records it (trust on first use). */
  getHostKey(instanceId: string): Promise<string | null>;
  putHostKey(instanceId: string, hostKeySha256: string): Promise<void>;
  /** Forget every key of a workspace (on delete). */
  removeAll(workspaceId: string): Promise<void>;
  /** Forget one generation's key pair (its instance is gone). */
  removeGeneration(workspaceId: string, generation: number): Promise<void>;
  /** Forget the pinned host keys of instances that are gone (instance ids are never reused). */
  removeHostKeys(instanceIds: readonly string[]): Promise<void>;
}

/** For unit tests and harnesses: keeps everything in process memory. */
export class MemorySshKeyStore implements SshKeyStore {
  private readonly pairs = new Map<string, SshKeyPair>();
  private readonly hostKeys = new Map<string, string>();

  async put(workspaceId: string, generation: number, pair: SshKeyPair): Promise<void> {
    this.pairs.set(`${workspaceId}/${generation}`, pair);
  }
  async get(workspaceId: string, generation: number): Promise<SshKeyPair | null> {
    return this.pairs.get(`${workspaceId}/${generation}`) ?? null;
  }
  async getHostKey(instanceId: string): Promise<string | null> {
    return this.hostKeys.get(instanceId) ?? null;
  }
  async putHostKey(instanceId: string, hostKeySha256: string): Promise<void> {
    this.hostKeys.set(instanceId, hostKeySha256);
  }
  async removeAll(workspaceId: string): Promise<void> {
    for (const k of [...this.pairs.keys()]) if (k.startsWith(`${workspaceId}/`)) this.pairs.delete(k);
  }
  async removeGeneration(workspaceId: string, generation: number): Promise<void> {
    this.pairs.delete(`${workspaceId}/${generation}`);
  }
  async removeHostKeys(instanceIds: readonly string[]): Promise<void> {
    for (const id of instanceIds) this.hostKeys.delete(id);
  }
}
