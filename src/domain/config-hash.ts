import { createHash } from 'node:crypto';
import YAML from 'yaml';

export type WorkspaceConfig = Record<string, unknown>;

/** Key-sorted JSON, so the hash depends on content, never on key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** The desired config's identity: what a booted agent must prove it runs. */
export function hashConfig(runtime: string, config: WorkspaceConfig, secretsVersion = ''): string {
  return createHash('sha256')
    .update(canonical({ runtime, config, secretsVersion }))
    .digest('hex')
    .slice(0, 16);
}

/** What the agent writes to /configs/config.yaml; the workspace's runtime always wins. */
export function renderConfigYaml(runtime: string, config: WorkspaceConfig): string {
  return YAML.stringify({ ...config, runtime });
}
