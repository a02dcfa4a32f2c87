/**
 * Secrets on both backends: org defaults under workspace overrides reach the agent only through its
 * bootstrap bundle (never the container env, the EC2 user-data or the Temporal history), a secret
 * set later arrives at the next restart, and what the agent echoes is redacted before storage.
 */
import { Writable } from 'node:stream';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { secretsHash } from '../../src/agent/configs.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { workspaceWorkflowId } from '../../src/workflows/messages.js';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import {
  launchTextOf,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  stateFileOf,
  useParityStack,
  type ParityFixture,
} from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const ORG_ONLY = 'org-default-3b8d2f61';
const ORG_OVERRIDDEN = 'org-overridden-a41c9e07';
const WS_OWN = 'ws-override-77e0c2d9';
const LATER = 'set-later-5f1a8b33';
const VALUES = [ORG_ONLY, ORG_OVERRIDDEN, WS_OWN, LATER];

/** A history as JSON plus every payload decoded: values travel base64-encoded in payloads. */
function historyText(json: string): string {
  const decoded: string[] = [];
  JSON.parse(json, (key, value: unknown) => {
    if (key === 'data' && typeof value === 'string')
      decoded.push(Buffer.from(value, 'base64').toString('utf8'));
    return value;
  });
  return `${json}\n${decoded.join('\n')}`;
}

/**
 * Every run of the workspace's entity workflow (continue-as-new makes several), as text: from the
 * latest run back through each run's `continuedExecutionRunId`, so that no run is missed (a
 * visibility listing would follow the newest runs only after a moment).
 */
async function workflowHistories(t: ParityFixture, id: string): Promise<string> {
  const client = t.stack.service.temporal;
  const workflowId = workspaceWorkflowId(id);
  const texts: string[] = [];
  let runId: string | undefined;
  do {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    texts.push(historyText(historyToJSON(history)));
    runId =
      history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  } while (runId);
  return texts.join('\n');
}

/** Each value's occurrences in every row of every table of the database (a dump, in effect). */
async function databaseCounts(t: ParityFixture): Promise<Record<string, number>> {
  const pool = t.stack.service.db.pool;
  const tables = await pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`,
  );
  const counts: Record<string, number> = {};
  for (const value of VALUES) {
    counts[value] = 0;
    for (const { table_name } of tables.rows) {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM "${table_name}" t WHERE strpos(t::text, $1) > 0`,
        [value],
      );
      counts[value] += Number(rows[0]!.n);
    }
  }
  return counts;
}

describe.each(PARITY_BACKENDS)('%s: secrets', CONCURRENT_BLOCK, (backend) => {
  // Everything the service logs (API and worker), at debug, kept to search for the values.
  const logged: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged.push(chunk.toString('utf8'));
      done();
    },
  });
  const t = useParityStack(backend, { log: pino({ level: 'debug' }, sink) });

  it('org default under the workspace override, only in the bundle; redacted everywhere stored', async () => {
    const admin = t.stack.adminToken;
    for (const [key, value] of [
      ['ORG_ONLY', ORG_ONLY],
      ['API_KEY', ORG_OVERRIDDEN],
    ]) {
      const put = await t.stack.api.call('PUT', `/v1/orgs/${t.orgId}/secrets/${key}`, {
        token: admin,
        body: { value },
      });
      expect(put.status).toBe(204);
    }
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: {
        name: 'keeper',
        backend,
        secrets: { API_KEY: WS_OWN },
        // The agent echoes ORG_ONLY into a boot message and its console, on purpose.
        config: { agent: { echoSecret: 'ORG_ONLY' } },
        initialMemories: [{ content: `remember ${ORG_ONLY} and ${ORG_OVERRIDDEN}` }],
      },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'online');

    const delivered = { API_KEY: WS_OWN, ORG_ONLY };
    const envFile = await stateFileOf(backend, t.stack.docker, id, 1, 'secrets.env');
    expect(envFile.content.toString()).toContain(`API_KEY=${WS_OWN}\n`);
    expect(envFile.content.toString()).toContain(`ORG_ONLY=${ORG_ONLY}\n`);
    expect(envFile.content.toString()).not.toContain(ORG_OVERRIDDEN);
    const launch1 = await launchTextOf(backend, t.stack.docker, id, 1);
    expect(launch1).toMatch(/WO_BOOTSTRAP_TOKEN=/);
    for (const v of VALUES) expect(launch1).not.toContain(v);
    const bootLog = async () =>
      (await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: t.key })).body;
    expect(JSON.stringify(await bootLog())).toContain(`secrets sha256 ${secretsHash(delivered)}`);

    // An A2A turn carrying both values: the activity row keeps neither.
    const a2a = await t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, {
      token: t.key,
      body: {
        jsonrpc: '2.0',
        id: 1,
        method: 'message/send',
        params: {
          message: {
            role: 'user',
            messageId: 'm1',
            parts: [{ kind: 'text', text: `use ${ORG_ONLY} ${WS_OWN}` }],
          },
        },
      },
    });
    expect(a2a.status).toBe(200);

    // The agent writes a memory that echoes a value (its own workspace token stands in for it).
    const agentToken = await mintWorkspaceToken(t.stack.service.db.pool, id, 1);
    const memory = await t.stack.api.call('POST', `/v1/workspaces/${id}/memories`, {
      token: agentToken,
      body: { content: `the key is ${WS_OWN}` },
    });
    expect(memory.status).toBe(201);
    const memories = await t.stack.api.call('GET', `/v1/workspaces/${id}/memories`, { token: t.key });
    expect(JSON.stringify(memories.body)).toContain('the key is [REDACTED]');

    // Set later, then restart: the next generation's agent has it (its hash says so).
    const later = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/LATER`, {
      token: t.key,
      body: { value: LATER },
    });
    expect(later.status).toBe(204);
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key })).status).toBe(
      202,
    );
    await waitFor(
      async () => {
        const w = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
        return w.generation === 2 && w.status === 'online';
      },
      { timeoutMs: 120_000, describe: 'generation 2 online' },
    );
    const hash2 = secretsHash({ ...delivered, LATER });
    expect(JSON.stringify(await bootLog())).toContain(`secrets sha256 ${hash2}`);
    expect((await stateFileOf(backend, t.stack.docker, id, 2, 'secrets.env')).content.toString()).toContain(
      `LATER=${LATER}\n`,
    );

    // Never in what the resources were launched with, nor in any workflow history.
    const launch2 = await launchTextOf(backend, t.stack.docker, id, 2);
    expect(launch2).toMatch(/WO_BOOTSTRAP_TOKEN=/);
    for (const v of VALUES) expect(launch2).not.toContain(v);
    const histories = await workflowHistories(t, id);
    expect(histories).toContain(workspaceWorkflowId(id));
    for (const v of VALUES) expect(histories).not.toContain(v);

    // Boot log (events + console) and every stored row: the echo is there, redacted.
    const log = JSON.stringify(await bootLog());
    expect(log).toContain('echo [REDACTED]');
    for (const v of VALUES) expect(log).not.toContain(v);
    const activity = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity`, { token: t.key });
    expect(activity.body.items.length).toBeGreaterThan(0);
    expect(JSON.stringify(activity.body)).toContain('[REDACTED]');
    expect(await databaseCounts(t)).toEqual(Object.fromEntries(VALUES.map((v) => [v, 0])));
    const serviceLog = logged.join('');
    expect(serviceLog).toContain('api listening');
    for (const v of VALUES) expect(serviceLog).not.toContain(v);

    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
    // Its sealed values go with it (the org's defaults stay: the org lives on), and what it stored
    // was redacted when written, so it stays redacted without them.
    const pool = t.stack.service.db.pool;
    expect((await pool.query('SELECT 1 FROM secrets WHERE workspace_id = $1', [id])).rowCount).toBe(0);
    expect((await pool.query('SELECT 1 FROM agent_credentials WHERE workspace_id = $1', [id])).rowCount).toBe(
      0,
    );
    expect(
      (await pool.query('SELECT 1 FROM org_secrets WHERE org_id = $1', [t.orgId])).rowCount,
    ).toBeGreaterThan(0);
    const afterDelete = JSON.stringify([
      await bootLog(),
      (await t.stack.api.call('GET', `/v1/workspaces/${id}/activity`, { token: t.key })).body,
    ]);
    expect(afterDelete).toContain('[REDACTED]');
    for (const v of VALUES) expect(afterDelete).not.toContain(v);
    expect(await databaseCounts(t)).toEqual(Object.fromEntries(VALUES.map((v) => [v, 0])));
  });
});
