/**
 * What an operator reads in the Temporal UI: the entity is started with its static summary and
 * details (name, org, backend; ids and template), keeps its current details with the status, and
 * every activity and timer in its history says what it does to which resource.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteOnlyCarry, entityStartOptions } from '../../src/domain/entity-start.js';
import {
  deleteUpdate,
  restartUpdate,
  type BackendName,
  type WorkspaceWorkflowInput,
} from '../../src/workflows/messages.js';
import { createEnv, replayAndRecord, settledAt, until, withWorker } from './harness.js';
import { told } from './user-metadata.js';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createEnv();
  // The keywords the API's start sets (entityStartOptions); 2 = KEYWORD.
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: { WorkspaceId: 2, OrgId: 2, WorkspaceBackend: 2 },
  });
});
afterAll(async () => {
  await env?.teardown();
});

/** The entity's current details, as the UI reads them (the SDK's built-in metadata query). */
async function currentDetails(handle: WorkflowHandle): Promise<string> {
  const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  return meta.currentDetails ?? '';
}

const entityInput = (
  workspaceId: string,
  orgId: string,
  backend: BackendName,
  bootDeadlineMs: number,
): WorkspaceWorkflowInput => ({ workspaceId, orgId, backend, bootDeadlineMs });

describe('entity workflow: the story in the Temporal UI', () => {
  it('starts with a summary and details, keeps current details, and names each step', async () => {
    await withWorker(env, async (h) => {
      const workspaceId = 'ab12cd34ef56';
      const input = entityInput(workspaceId, 'org0000000000001', 'docker', 60_000);
      const handle = await h.start(
        'workspaceWorkflow',
        entityStartOptions(
          input,
          h.taskQueue,
          { firstStart: true },
          { name: 'alpha', orgName: 'acme', template: 'coder', runtime: 'claude-code' },
        ),
      );
      await until(h, handle, settledAt('online', 1), 'online at generation 1');

      const description = await handle.describe();
      expect(await description.staticSummary()).toBe('workspace alpha · org acme · docker');
      const details = (await description.staticDetails()) ?? '';
      expect(details).toContain(`(\`${workspaceId}\`)`);
      expect(details).toContain('(`org0000000000001`)');
      expect(details).toContain('template: `coder` · runtime `claude-code`');
      expect(details).toContain(`GET /v1/workspaces/${workspaceId}`);

      let current = await currentDetails(handle);
      expect(current).toMatch(/^\*\*online\*\* · phase `platform-health-ok` · generation 1/);
      expect(current).toContain(`\`ws-${workspaceId}-g1\` (docker)`);

      await handle.executeUpdate(restartUpdate);
      await until(h, handle, settledAt('online', 2), 'online at generation 2');
      current = await currentDetails(handle);
      expect(current).toContain('generation 2');

      const story = await told(handle);
      // Every activity says what it does; the backend's name the resource of their generation.
      for (const a of story.activities) expect(a.summary, a.type).toBeTruthy();
      const summaries = story.activities.map((a) => a.summary);
      expect(summaries).toContain(`create + start container ws-${workspaceId}-g1`);
      expect(summaries).toContain(`remove generation 1 (container ws-${workspaceId}-g1)`);
      expect(summaries).toContain(`create + start container ws-${workspaceId}-g2`);
      expect(summaries).toContain('snapshot the saved config for generation 2');
      expect(summaries).toContain('record online/platform-health-ok (generation 2)');
      // (The fake agent proves itself within the start: no boot-deadline timer ever reached the
      // server here; the failed boot below has one.)
      for (const t of story.timers) expect(t).toBeTruthy();

      await handle.executeUpdate(deleteUpdate);
      await until(h, handle, (s) => s.status === 'deleted', 'deleted');
      await handle.result();
      expect((await told(handle)).activities.map((a) => a.summary)).toContain(
        `remove every container and volume of ws-${workspaceId}`,
      );
      // Replays (and with RECORD_REPLAY=1 records) a history whose commands carry summaries.
      await replayAndRecord(handle, 'ui-story');
    });
  });

  it('an entity that only deletes says so, and a failed boot shows its error', async () => {
    await withWorker(
      env,
      async (h) => {
        const workspaceId = 'ff12cd34ef56';
        const input = entityInput(workspaceId, 'org0000000000002', 'ec2', 30_000);
        const handle = await h.start(
          'workspaceWorkflow',
          entityStartOptions(input, h.taskQueue, { firstStart: true }, { name: 'beta' }),
        );
        // The agent never proves itself: the deadline fails the generation with the reason.
        await until(h, handle, settledAt('failed', 1), 'failed at generation 1');
        const current = await currentDetails(handle);
        expect(current).toMatch(/^\*\*failed\*\* · generation 1/);
        expect(current).toContain('last error: boot deadline of 30000 ms exceeded');
        const story = await told(handle);
        expect(story.activities.map((a) => a.summary)).toEqual(
          expect.arrayContaining([
            `RunInstances ws-${workspaceId}-g1`,
            `GetConsoleOutput ws-${workspaceId}-g1`,
            `remove generation 1 (TerminateInstances ws-${workspaceId}-g1)`,
          ]),
        );
        // The boot deadline is a timer that says whose deadline it is.
        expect(story.timers).toContain(`boot deadline of ws-${workspaceId}-g1: 30 s`);
        await handle.terminate('test over');

        const deleteOnly = entityStartOptions(
          {
            ...input,
            workspaceId: 'ee12cd34ef56',
            carried: deleteOnlyCarry({ status: 'failed', generation: 3 }),
          },
          h.taskQueue,
          { firstStart: false },
        );
        expect(deleteOnly.staticSummary).toBe('delete workspace ee12cd34ef56 · org org0000000000002 · ec2');
        expect(deleteOnly.staticDetails).toContain('Started only to delete it (from status `failed`).');
      },
      (f) => {
        f.agentAnswers = () => false;
      },
    );
  });
});
