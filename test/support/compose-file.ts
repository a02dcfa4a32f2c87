/** docker-compose.yml as compose reads it, for the tests that check it or run its settings. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../setup/services.js';

export interface ComposeService {
  image?: string;
  command?: string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  networks?: string[] | Record<string, unknown>;
  network_mode?: string;
  volumes?: string[];
  profiles?: string[];
  environment?: Record<string, string | number>;
  deploy?: { replicas?: number };
  group_add?: string[];
  ports?: string[];
}
export interface ComposeFile {
  services: Record<string, ComposeService>;
  networks?: Record<string, unknown>;
  volumes?: Record<string, unknown>;
}

/**
 * The file with no variable set: `${VAR:-default}` is its default (compose interpolates before it
 * validates); `${VAR:?message}` stays, and `$${…}` is an escaped dollar of a command. `merge`: the
 * file shares the service settings through YAML anchors and `<<:` merge keys.
 */
export function loadCompose(): ComposeFile {
  const source = readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
  const interpolated = source.replace(/(?<!\$)\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
  return parse(interpolated, { merge: true }) as ComposeFile;
}
