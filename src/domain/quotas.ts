/**
 * What one workspace (or one org's defaults) may hold: the defaults of the quota settings
 * (src/config.ts) and of the code that enforces them when it is given no settings (src/app).
 * Beyond each, a write answers 403 `quota_exceeded`.
 */

/** Memories a workspace may hold (MEMORIES_PER_WORKSPACE_MAX). */
export const MEMORIES_PER_WORKSPACE_MAX = 10_000;
/** Secret keys a workspace, or an org's defaults, may hold (SECRETS_MAX_KEYS). */
export const SECRETS_MAX_KEYS = 200;
/** Plugins a workspace may hold (PLUGINS_PER_WORKSPACE_MAX). */
export const PLUGINS_PER_WORKSPACE_MAX = 32;
/** Bytes their files may take, as stored and bundled (PLUGINS_MAX_BYTES): 64 MiB. */
export const PLUGINS_MAX_BYTES = 64 * 1024 * 1024;
