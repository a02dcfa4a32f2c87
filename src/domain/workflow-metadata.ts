/**
 * The static summary and details every workflow is started with: what an operator reads first in
 * the Temporal UI's list and at the top of a history (the workspace's name, org and backend; the
 * ids, template and API paths as markdown), so nobody has to decode `workspace:<hex>` by hand.
 */
import type { BackendName, PluginWorkflowInput, WorkspaceWorkflowInput } from '../workflows/messages.js';
import { resourceName, seconds } from '../workflows/story.js';

export interface StartMetadata {
  staticSummary: string;
  staticDetails: string;
}

/** What the API knows about a workspace beyond the entity's input (all optional: a label only). */
export interface WorkspaceAbout {
  name?: string;
  orgName?: string;
  template?: string | null;
  runtime?: string;
}

/** Summary line length the UI shows without cutting (it is a single line). */
const SUMMARY_MAX = 200;

/** `workspace:<id>`: the workspace's name, org and backend; a delete-only entity says so. */
export function entityMetadata(input: WorkspaceWorkflowInput, about: WorkspaceAbout = {}): StartMetadata {
  const name = about.name ?? input.workspaceId;
  const org = about.orgName ?? input.orgId;
  const deleteOnly = input.carried?.deleting !== undefined;
  const staticSummary = clip(
    `${deleteOnly ? 'delete ' : ''}workspace ${name} · org ${org} · ${input.backend}`,
  );
  const generation = input.carried?.generation ?? 0;
  const lines = [
    `**Workspace ${md(name)}** (\`${input.workspaceId}\`) of org **${md(org)}** (\`${input.orgId}\`) on **${input.backend}**.`,
    '',
    `- template: ${about.template ? `\`${about.template}\`` : 'none'}${about.runtime ? ` · runtime \`${about.runtime}\`` : ''}`,
    `- resources: ${resourceLine(input.backend, input.workspaceId, generation)}`,
    `- boot deadline: ${seconds(input.bootDeadlineMs)} · restart policy: ${input.restartPolicy?.policy ?? 'default'}`,
    `- API: \`GET /v1/workspaces/${input.workspaceId}\` · live status \`GET /v1/workspaces/${input.workspaceId}/events\``,
    `- its other workflows (plugins, schedules): \`WorkspaceId = "${input.workspaceId}"\``,
  ];
  if (deleteOnly) lines.push('', `Started only to delete it (from status \`${input.carried?.status}\`).`);
  return { staticSummary, staticDetails: lines.join('\n') };
}

function resourceLine(backend: BackendName, workspaceId: string, generation: number): string {
  const one = `\`${resourceName(workspaceId, generation > 0 ? generation : 1)}\``;
  return backend === 'ec2'
    ? `one EC2 instance per generation, Name ${one}…`
    : `one container per generation, ${one}…; volumes \`ws-${workspaceId}-configs\`, \`ws-${workspaceId}-workspace\``;
}

export function pluginMetadata(input: Omit<PluginWorkflowInput, 'reportDeadlineMs'>): StartMetadata {
  return {
    staticSummary: clip(`${input.action} plugin ${input.name} · workspace ${input.workspaceId}`),
    staticDetails: [
      `**${input.action === 'install' ? 'Install' : 'Uninstall'} plugin ${md(input.name)}** in workspace \`${input.workspaceId}\`.`,
      '',
      `- request: \`${input.requestId}\``,
      `- the entity: \`workspace:${input.workspaceId}\``,
      `- API: \`GET /v1/workspaces/${input.workspaceId}/plugins\``,
    ].join('\n'),
  };
}

/** A sweep run: started by its Schedule every `intervalMs`, or on demand (null). */
export function sweepMetadata(name: string, args: unknown, intervalMs: number | null): StartMetadata {
  const by = intervalMs === null ? 'run on demand' : `started by its Schedule every ${seconds(intervalMs)}`;
  return {
    staticSummary: `${name} sweep (${intervalMs === null ? 'run now' : `every ${seconds(intervalMs)}`})`,
    staticDetails: [
      `**The ${name} sweep**, ${by}.`,
      '',
      `- input: \`${JSON.stringify(args)}\``,
      `- run one now: \`POST /v1/admin/sweeps/${name}/run\``,
      '- what each sweep does: docs/operations.md',
    ].join('\n'),
  };
}

export function orgDeleteMetadata(orgId: string, waitMs: number): StartMetadata {
  return {
    staticSummary: `delete org ${orgId} (cascade)`,
    staticDetails: [
      `**Deletes org \`${orgId}\`**: every workspace through its entity, then a sweep by the org's label/tag.`,
      '',
      `- waits up to ${seconds(waitMs)} for the deletes before a first sweep, then on until none is left`,
      `- its workspaces' entities: \`OrgId = "${orgId}"\``,
    ].join('\n'),
  };
}

export function scheduledRunMetadata(row: {
  id: string;
  workspaceId: string;
  cron: string;
  timezone: string;
}): StartMetadata {
  return {
    staticSummary: clip(`scheduled message ${row.id} · workspace ${row.workspaceId} · ${row.cron}`),
    staticDetails: [
      `**Scheduled message** \`${row.id}\` of workspace \`${row.workspaceId}\`: \`${row.cron}\` (${row.timezone}).`,
      '',
      '- its text is read from the schedule row at each run, never kept in Temporal',
      `- API: \`GET /v1/workspaces/${row.workspaceId}/schedules\``,
    ].join('\n'),
  };
}

/** A name from a request, safe in markdown (no emphasis or link syntax of its own). */
function md(text: string): string {
  return text.replace(/[\\`*_[\]<>#|]/g, (c) => `\\${c}`);
}

function clip(line: string): string {
  const flat = line.replace(/\s+/g, ' ');
  return flat.length > SUMMARY_MAX ? `${flat.slice(0, SUMMARY_MAX - 1)}…` : flat;
}
