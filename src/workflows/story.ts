/**
 * What the workflows tell an operator in the Temporal UI: each activity's and timer's one-line
 * summary, with the concrete resource it touches, and the workflow's current details. Pure strings
 * (workflow code): a summary is metadata on the command, so changing one never breaks a replay.
 */
import type { BackendName, WorkspaceStatus } from './messages.js';

/** The resource of one generation: the Docker container name, the EC2 instance's Name tag. */
export const resourceName = (workspaceId: string, generation: number): string =>
  `ws-${workspaceId}-g${generation}`;

/** Starting a generation: a new resource (`creating`) or the stopped one again (`starting`). */
export function startSummary(
  backend: BackendName,
  workspaceId: string,
  generation: number,
  phase: 'creating' | 'starting',
): string {
  const name = resourceName(workspaceId, generation);
  if (backend === 'ec2') return `${phase === 'creating' ? 'RunInstances' : 'StartInstances'} ${name}`;
  return `${phase === 'creating' ? 'create + start' : 'start'} container ${name}`;
}

/** Stopping a generation's resource; `attempt` counts the failed attempts before this one. */
export function stopSummary(
  backend: BackendName,
  workspaceId: string,
  generation: number,
  attempt = 0,
): string {
  const name = resourceName(workspaceId, generation);
  const what = backend === 'ec2' ? `StopInstances ${name}` : `stop container ${name}`;
  return `${what}${attempt > 0 ? ` (attempt ${attempt + 1})` : ''}`;
}

/** Removing one generation's resource (a restart's predecessor, a failed boot). */
export function removeGenerationSummary(
  backend: BackendName,
  workspaceId: string,
  generation: number,
): string {
  const name = resourceName(workspaceId, generation);
  const how = backend === 'ec2' ? `TerminateInstances ${name}` : `container ${name}`;
  return `remove generation ${generation} (${how})`;
}

/** The delete: every generation and the volumes. */
export function removeAllSummary(backend: BackendName, workspaceId: string, attempt: number): string {
  const what = backend === 'ec2' ? 'terminate every instance' : 'remove every container and volume';
  return `${what} of ws-${workspaceId}${attempt > 0 ? ` (attempt ${attempt + 1})` : ''}`;
}

export function bootLogSummary(backend: BackendName, workspaceId: string, generation: number): string {
  const name = resourceName(workspaceId, generation);
  return backend === 'ec2' ? `GetConsoleOutput ${name}` : `capture boot log of container ${name}`;
}

export function statusProbeSummary(backend: BackendName, workspaceId: string, generation: number): string {
  const name = resourceName(workspaceId, generation);
  const how = backend === 'ec2' ? `DescribeInstances ${name}` : `inspect container ${name}`;
  return `${how} before an automatic restart`;
}

export const bootDeadlineSummary = (workspaceId: string, generation: number, ms: number): string =>
  `boot deadline of ${resourceName(workspaceId, generation)}: ${seconds(ms)}`;

export function transitionSummary(status: WorkspaceStatus, phase: string | null, generation: number): string {
  return `record ${status}${phase ? `/${phase}` : ''} (generation ${generation})`;
}

export interface DetailsInput {
  status: WorkspaceStatus;
  phase: string | null;
  generation: number;
  backend: BackendName;
  workspaceId: string;
  error: string | null;
  restarts: number;
  lastRestartReason: string | null;
  /** Workflow time of the last status change. */
  sinceMs: number;
}

/** The entity's current details (markdown): what an operator asks first about a workspace. */
export function currentDetails(d: DetailsInput): string {
  const lines = [
    `**${d.status}**${d.phase ? ` · phase \`${d.phase}\`` : ''} · generation ${d.generation}`,
    '',
    `- resource: \`${d.generation > 0 ? resourceName(d.workspaceId, d.generation) : 'none yet'}\` (${d.backend})`,
    `- since: ${new Date(d.sinceMs).toISOString()}`,
    `- automatic restarts in this streak: ${d.restarts}${d.lastRestartReason ? ` (last: ${oneLine(d.lastRestartReason)})` : ''}`,
  ];
  if (d.error) lines.push(`- last error: ${oneLine(d.error)}`);
  return lines.join('\n');
}

/** Seconds for a summary: `60 s`, or `1.5 s` below ten. */
export function seconds(ms: number): string {
  const s = ms / 1000;
  return `${s >= 10 ? Math.round(s) : Number(s.toFixed(1))} s`;
}

/** One line, bounded: a failure message can be long and multi-line. */
function oneLine(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
