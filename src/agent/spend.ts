/**
 * The generation's spend, kept in the agent's state dir so a reboot of the same resource (docker
 * restart, EC2 stop/start: same generation) goes on counting from where it was. Without it the
 * agent would report from 0 again, and the platform, which keeps each generation's highest report,
 * would not see new spend until the count passed the old figure. A new generation starts at 0.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const FILE = 'spend.json';

/** What this generation spent before this process started (0: first boot, or another generation). */
export async function loadSpent(stateDir: string, generation: number): Promise<number> {
  try {
    const raw = JSON.parse(await readFile(join(stateDir, FILE), 'utf8')) as unknown;
    if (typeof raw !== 'object' || raw === null) return 0;
    const { generation: g, spentCents } = raw as { generation?: unknown; spentCents?: unknown };
    return g === generation && Number.isSafeInteger(spentCents) && (spentCents as number) > 0
      ? (spentCents as number)
      : 0;
  } catch {
    return 0;
  }
}

/** Saves the running total; saves are serialized, each write-then-rename (never a torn file). */
export function spendSaver(stateDir: string, generation: number): (spentCents: number) => Promise<void> {
  let chain: Promise<void> = Promise.resolve();
  return (spentCents) => {
    chain = chain
      .then(async () => {
        await mkdir(stateDir, { recursive: true, mode: 0o700 });
        const tmp = join(stateDir, `${FILE}.tmp-${process.pid}`);
        await writeFile(tmp, JSON.stringify({ generation, spentCents }), { mode: 0o600 });
        await rename(tmp, join(stateDir, FILE));
      })
      // A failed save costs only the resume after a reboot; the next charge saves again.
      .catch(() => undefined);
    return chain;
  };
}
