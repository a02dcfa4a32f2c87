/**
 * The patch markers of an entity run's history. A run of the current code records exactly one,
 * `patches-decided-at-start`, in its first workflow task (src/workflows/workspace/workflow.ts,
 * PATCHES.decidedAtStart): a patch decided in a later task could be recorded one task later than
 * a replay decides it, and that history would never replay.
 */
import type { History } from '@temporalio/common/lib/proto-utils.js';

/** Temporal's name for the marker `patched()` records (sdk-core's PATCH_MARKER_NAME). */
const PATCH_MARKER = 'core_patch';

export interface PatchMarker {
  patchId: string;
  /** Recorded by the run's first workflow task. */
  firstTask: boolean;
}

export function patchMarkers(history: History): PatchMarker[] {
  const markers: PatchMarker[] = [];
  // A task's commands follow its WORKFLOW_TASK_COMPLETED event (their own field naming that event
  // is not filled in alike by every server), so a marker's task is the last one completed before it.
  let tasksCompleted = 0;
  for (const e of history.events ?? []) {
    if (e.workflowTaskCompletedEventAttributes) tasksCompleted++;
    const m = e.markerRecordedEventAttributes;
    if (m?.markerName !== PATCH_MARKER) continue;
    const data = m.details?.['patch-data']?.payloads?.[0]?.data;
    const { id } = JSON.parse(Buffer.from(data ?? []).toString('utf8')) as { id: string };
    markers.push({ patchId: id, firstTask: tasksCompleted === 1 });
  }
  return markers;
}

/** Throws unless the run decided its patches the current code's way (see the file's comment). */
export function assertPatchesDecidedAtStart(history: History): void {
  const markers = patchMarkers(history);
  const want = [{ patchId: 'patches-decided-at-start', firstTask: true }];
  if (JSON.stringify(markers) !== JSON.stringify(want)) {
    throw new Error(`patch markers ${JSON.stringify(markers)}, want ${JSON.stringify(want)}`);
  }
}
