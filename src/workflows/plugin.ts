/**
 * The plugin workflow: deliver (or remove) one plugin in a running workspace, then wait for the
 * agent to report the new plugin set. The report can arrive before the wait starts (a heartbeat
 * right after delivery): signals are buffered in state, so that race is decided by the state, not
 * by timing. No report by the deadline → failed with the reason. A stopped workspace gets nothing
 * now: the stored set is delivered by its next start (the bootstrap bundle).
 */
import { ActivityFailure, condition, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import {
  pluginsReportedSignal,
  type PluginWorkflowInput,
  type PluginWorkflowResult,
  type ReportedPlugin,
} from './messages.js';

// Delivery heartbeats while it writes (backendCall): a worker killed mid-delivery is noticed in
// seconds and the delivery runs again on another worker, rewriting the same folder.
const { deliverPlugin } = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 8 },
});
const { settlePlugin } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s' },
});

const BOOTING_POLL_MS = 2_000;

export async function pluginWorkflow(input: PluginWorkflowInput): Promise<PluginWorkflowResult> {
  let reported: ReportedPlugin[] | null = null;
  // Kept from the moment the run starts: a report can land while the delivery activity is still
  // finishing. It settles an install only by naming this request's install id, which is written
  // last by the delivery, so an early or stale report can never count for this install.
  setHandler(pluginsReportedSignal, (r) => {
    reported = r.plugins;
  });
  const settled = (): boolean => {
    if (!reported) return false;
    const mine = reported.find((p) => p.name === input.name);
    return input.action === 'install' ? mine?.installId === input.requestId : mine === undefined;
  };
  const base = { workspaceId: input.workspaceId, name: input.name, requestId: input.requestId };
  const deliver = () =>
    deliverPlugin.executeWithOptions(
      { summary: `${input.action} plugin ${input.name} in workspace ${input.workspaceId}` },
      [{ ...base, action: input.action }],
    );
  const settle = (outcome: Parameters<Activities['settlePlugin']>[0]['outcome']) =>
    settlePlugin.executeWithOptions({ summary: `record plugin ${input.name}: ${outcome.kind}` }, [
      { ...base, outcome },
    ]);

  let delivery: Awaited<ReturnType<Activities['deliverPlugin']>>;
  try {
    delivery = await deliver();
    // A booting generation may have fetched its bundle before this request was stored: deliver
    // once it runs (or its report settles it first), within the same deadline.
    for (let waited = 0; delivery === 'booting' && !settled(); waited += BOOTING_POLL_MS) {
      if (waited >= input.reportDeadlineMs) throw new Error('the workspace did not finish booting');
      await sleep(BOOTING_POLL_MS, { summary: 'the workspace is booting: deliver again shortly' });
      delivery = await deliver();
    }
  } catch (err) {
    // The backend's own words (an ActivityFailure's message is only "Activity task failed").
    const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
    const reason = `delivery failed: ${cause instanceof Error ? cause.message : String(cause)}`;
    await settle({ kind: 'failed', reason });
    return { outcome: 'failed', reason };
  }
  if (delivery === 'superseded') return { outcome: 'superseded' };
  if (delivery === 'not-running') {
    // Applied by the next start's bundle; an uninstall is simply gone from the stored set.
    const kind = input.action === 'install' ? 'pending' : 'removed';
    await settle({ kind });
    return { outcome: kind };
  }
  const waitFor = `the agent's report of plugin ${input.name} ${input.action === 'install' ? 'installed' : 'removed'}`;
  if (!(await condition(settled, input.reportDeadlineMs, { summary: `deadline for ${waitFor}` }))) {
    const reason = `the agent did not report the plugin ${input.action === 'install' ? 'installed' : 'removed'} within ${Math.round(input.reportDeadlineMs / 1000)} s`;
    await settle({ kind: 'failed', reason });
    return { outcome: 'failed', reason };
  }
  const kind = input.action === 'install' ? 'installed' : 'removed';
  await settle({ kind });
  return { outcome: kind };
}
