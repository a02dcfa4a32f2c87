/**
 * The static summaries and details the API and the worker start workflows with
 * (src/domain/workflow-metadata.ts): one readable line naming what the run is about, markdown
 * details with the ids, and nothing a request could use to forge markdown.
 */
import { describe, expect, test } from 'vitest';
import {
  entityMetadata,
  orgDeleteMetadata,
  pluginMetadata,
  sweepMetadata,
} from '../../src/domain/workflow-metadata.js';
import { scheduleDefinition } from '../../src/schedules/mirror.js';
import { sweepDefinition, type SweepSettings } from '../../src/worker/schedules.js';

const input = {
  workspaceId: 'a'.repeat(12),
  orgId: 'o'.repeat(16),
  backend: 'docker' as const,
  bootDeadlineMs: 90_000,
};

describe('workflow start metadata', () => {
  test('the entity: name, org and backend; ids, template and API paths in the details', () => {
    const m = entityMetadata(input, {
      name: 'alpha',
      orgName: 'acme',
      template: 'coder',
      runtime: 'claude-code',
    });
    expect(m.staticSummary).toBe('workspace alpha · org acme · docker');
    expect(m.staticDetails).toContain(
      '**Workspace alpha** (`aaaaaaaaaaaa`) of org **acme** (`oooooooooooooooo`)',
    );
    expect(m.staticDetails).toContain('boot deadline: 90 s');
    expect(m.staticDetails).toContain('`GET /v1/workspaces/aaaaaaaaaaaa`');
    // Without the API's labels (a start that only knows the input) the ids stand in.
    expect(entityMetadata({ ...input, backend: 'ec2' }).staticSummary).toBe(
      'workspace aaaaaaaaaaaa · org oooooooooooooooo · ec2',
    );
  });

  test('a name cannot inject markdown, and the summary stays one bounded line', () => {
    const m = entityMetadata(input, { name: '[x](http://evil) *b*\nnext', orgName: 'o'.repeat(400) });
    expect(m.staticDetails).toContain('\\[x\\](http://evil) \\*b\\*');
    expect(m.staticSummary).not.toContain('\n');
    expect(m.staticSummary.length).toBeLessThanOrEqual(200);
  });

  test('plugins, sweeps and the org cascade say what they are', () => {
    expect(
      pluginMetadata({ workspaceId: 'w1', name: 'demo', action: 'install', requestId: 'r1' }).staticSummary,
    ).toBe('install plugin demo · workspace w1');
    expect(sweepMetadata('orphans', { graceMs: 1 }, null).staticSummary).toBe('orphans sweep (run now)');
    expect(orgDeleteMetadata('o1', 30_000).staticSummary).toBe('delete org o1 (cascade)');
  });

  test('Schedules start their runs with a summary (sweeps and workspace schedules)', () => {
    const settings: SweepSettings = {
      taskQueue: 'q',
      schedulePrefix: '',
      orphanIntervalMs: 300_000,
      orphanGraceMs: 60_000,
      healthIntervalMs: 30_000,
      heartbeatStaleMs: 90_000,
      budgetIntervalMs: 60_000,
      budgetPolicy: 'stop',
    };
    expect(sweepDefinition(settings, 'health').action.staticSummary).toBe('health sweep (every 30 s)');
    expect(sweepDefinition(settings, 'orphans').action.staticDetails).toContain('`{"graceMs":60000}`');
    const row = {
      id: 'b'.repeat(16),
      workspaceId: 'a'.repeat(16),
      cron: '0 9 * * *',
      timezone: 'UTC',
      enabled: true,
    };
    const action = scheduleDefinition(row, 'q').action;
    expect(action.staticSummary).toBe(
      `scheduled message ${row.id} · workspace ${row.workspaceId} · 0 9 * * *`,
    );
    expect(action.staticDetails).toContain('never kept in Temporal');
  });
});
