/**
 * Secrets key rotation (docs/operations.md › Rotating SECRETS_KEY), against the service's database
 * with the service's settings (SECRETS_KEY, SECRETS_OLD_KEYS, DATABASE_URL or DATA_DIR):
 *
 *   npx tsx src/cli/secrets.ts status        → sealed values per table and key id
 *   npx tsx src/cli/secrets.ts re-encrypt    → rewrites every value not under SECRETS_KEY with it
 *
 * Embedded PGlite has one owner: stop `./dev up` first. With PostgreSQL it runs beside the service.
 */
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { z } from 'zod';
import { openDatabase } from '../db/database.js';
import { reencryptAll, sealedCounts } from '../db/reencrypt.js';
import { SecretBox } from '../security/secrets.js';

const settings = z.object({
  SECRETS_KEY: z.string().min(1, 'SECRETS_KEY is required'),
  SECRETS_OLD_KEYS: z.string().default(''),
  DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().default('.data'),
});

type Out = (line: string) => void;

async function withDatabase<T>(
  env: NodeJS.ProcessEnv,
  fn: (db: Awaited<ReturnType<typeof openDatabase>>, box: SecretBox) => Promise<T>,
): Promise<T> {
  const s = settings.parse(env);
  const old = s.SECRETS_OLD_KEYS.split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const box = new SecretBox(s.SECRETS_KEY, old);
  const db = await openDatabase({ databaseUrl: s.DATABASE_URL, dataDir: s.DATA_DIR });
  try {
    return await fn(db, box);
  } finally {
    await db.close();
  }
}

export function secretsProgram(env: NodeJS.ProcessEnv, out: Out): Command {
  const program = new Command('secrets').description('secrets key rotation').exitOverride();
  program
    .command('status')
    .description('sealed values per table and key id; "configured" tells whether this process can open them')
    .action(async () => {
      await withDatabase(env, async (db, box) => {
        out(`current key id: ${box.currentKeyId}`);
        for (const c of await sealedCounts(db.pool)) {
          const state =
            c.keyId === null
              ? 'no key id (sealed before rotation support)'
              : c.keyId === box.currentKeyId
                ? 'current'
                : box.keyIds.includes(c.keyId)
                  ? 'old key, configured'
                  : 'NOT CONFIGURED';
          out(`${c.table}\t${c.keyId ?? '-'}\t${c.rows}\t${state}`);
        }
      });
    });
  program
    .command('re-encrypt')
    .description('rewrite every sealed value with SECRETS_KEY; afterwards SECRETS_OLD_KEYS can be emptied')
    .action(async () => {
      await withDatabase(env, async (db, box) => {
        const rewritten = await reencryptAll(db.pool, box);
        for (const [table, n] of Object.entries(rewritten)) out(`${table}: ${n} re-encrypted`);
        const left = (await sealedCounts(db.pool)).filter((c) => c.keyId !== box.currentKeyId);
        if (left.length > 0) {
          // Written meanwhile by a process still sealing with an old key: restart it, run again.
          throw new Error(
            `still under other keys: ${left.map((c) => `${c.table} ${c.keyId ?? '-'} (${c.rows})`).join(', ')}`,
          );
        }
        out(`every sealed value is under key ${box.currentKeyId}`);
      });
    });
  return program;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  secretsProgram(process.env, (line) => console.log(line))
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      // commander has printed its own usage errors; anything else gets one line, never a value.
      const code = (err as { code?: string }).code;
      if (!code?.startsWith('commander.')) console.error(err instanceof Error ? err.message : String(err));
      process.exitCode = (err as { exitCode?: number }).exitCode ?? 1;
    });
}
