import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';

/** The workflow entry module: the .ts source under tsx/vitest, the .js build under node. */
export function workflowsPath(): string {
  for (const ext of ['ts', 'js']) {
    const p = fileURLToPath(new URL(`../workflows/index.${ext}`, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('workflow entry module not found');
}

export interface WorkerOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  activities: Activities;
}

export async function createWorker(
  opts: WorkerOptions,
): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: opts.address });
  const worker = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    workflowsPath: workflowsPath(),
    activities: opts.activities,
    // A crashed worker's sticky tasks move back to the shared queue quickly.
    stickyQueueScheduleToStartTimeout: '3s',
  });
  return { worker, connection };
}
