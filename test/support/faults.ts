/**
 * What fault-injection tests count: everything a workspace holds on its backend, found the way an
 * operator would (docker labels `wo.*`; EC2 tags `ManagedBy`/`WorkspaceId`/`Generation` through
 * moto's DescribeInstances, plus the ec2-sim containers playing those instances), and a sampler
 * that watches it while faults happen so a duplicate that comes and goes is still seen.
 */
import { DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type Dockerode from 'dockerode';
import type { BackendKind } from '../../src/backends/backend.js';
import { LABEL, MANAGED_BY } from '../../src/backends/docker/names.js';
import { TAG } from '../../src/backends/ec2/tags.js';
import { LABEL_INSTANCE, LABEL_SIM } from '../ec2-sim/sim.js';
import { motoClient } from '../parity/backends.js';
import { volumesOf } from './stack.js';

export interface Held {
  kind: 'container' | 'instance' | 'sim-container' | 'volume';
  id: string;
  /** The generation the resource belongs to (volumes: null, they are per workspace). */
  generation: number | null;
  /** Docker state (running, exited, …) or EC2 state (pending, running, stopped, …). */
  state: string;
}

/**
 * Everything of `workspaceId` on `backend` right now (terminated EC2 instances excluded); EC2 is
 * read from the run's moto unless a test with a moto of its own passes its client.
 */
export async function holdings(
  backend: BackendKind,
  docker: Dockerode,
  workspaceId: string,
  ec2: EC2Client = motoClient(),
): Promise<Held[]> {
  if (backend === 'docker') {
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.workspaceId}=${workspaceId}`] },
    });
    const volumes = await volumesOf(docker, workspaceId);
    return [
      ...containers.map((c) => ({
        kind: 'container' as const,
        id: c.Names[0]?.replace(/^\//, '') ?? c.Id,
        generation: Number(c.Labels[LABEL.generation]),
        state: c.State,
      })),
      ...volumes.map((v) => ({ kind: 'volume' as const, id: v.Name, generation: null, state: 'present' })),
    ];
  }
  const out = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
        { Name: `tag:${TAG.workspaceId}`, Values: [workspaceId] },
      ],
    }),
  );
  const instances = (out.Reservations ?? [])
    .flatMap((r) => r.Instances ?? [])
    .filter((i) => i.State?.Name !== 'terminated');
  const generationOf = new Map(
    instances.map((i) => [i.InstanceId ?? '', Number(i.Tags?.find((t) => t.Key === TAG.generation)?.Value)]),
  );
  const simContainers = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL_SIM}=1`, `wo.workspace-id=${workspaceId}`] },
  });
  return [
    ...instances.map((i) => ({
      kind: 'instance' as const,
      id: i.InstanceId ?? '',
      generation: generationOf.get(i.InstanceId ?? '') ?? null,
      state: i.State?.Name ?? 'unknown',
    })),
    ...simContainers.map((c) => ({
      kind: 'sim-container' as const,
      id: c.Labels[LABEL_INSTANCE] ?? c.Id,
      // A container whose instance is terminated (or unknown) belongs to no live generation.
      generation: generationOf.get(c.Labels[LABEL_INSTANCE] ?? '') ?? null,
      state: c.State,
    })),
  ];
}

/** The compute resources (containers / instances, not volumes or the sim's mirrors) per generation. */
function perGeneration(held: Held[]): Map<number | null, Held[]> {
  const by = new Map<number | null, Held[]>();
  for (const h of held) {
    if (h.kind !== 'container' && h.kind !== 'instance') continue;
    by.set(h.generation, [...(by.get(h.generation) ?? []), h]);
  }
  return by;
}

/** "g2: ws-…-g2, ws-…-g2" for every generation held by more than one resource. */
export function duplicates(held: Held[]): string[] {
  return [...perGeneration(held)]
    .filter(([, list]) => list.length > 1)
    .map(([gen, list]) => `g${gen}: ${list.map((h) => `${h.id} (${h.state})`).join(', ')}`);
}

/** Resources of any generation but `current` (a sim container counts when its instance is not current). */
export function orphans(held: Held[], current: number): string[] {
  return held
    .filter((h) => h.kind !== 'volume' && h.generation !== current)
    .map((h) => `${h.kind} ${h.id} of g${h.generation} (${h.state})`);
}

export interface Watch {
  /** Stops sampling; resolves with every duplicate seen (empty = none) and the sample count. */
  stop(): Promise<{ samples: number; duplicates: string[]; maxLiveGenerations: number }>;
}

/**
 * Samples holdings of the given workspaces every `intervalMs` until stopped, recording any moment
 * at which one generation had two resources. Sampling errors (dockerd restarting) are skipped.
 */
export function watchHoldings(
  backend: BackendKind,
  docker: Dockerode,
  workspaceIds: () => string[],
  intervalMs = 250,
): Watch {
  let stopped = false;
  let samples = 0;
  let maxLiveGenerations = 0;
  const seen = new Set<string>();
  const loop = (async () => {
    while (!stopped) {
      for (const id of workspaceIds()) {
        try {
          const held = await holdings(backend, docker, id);
          samples++;
          for (const d of duplicates(held)) seen.add(`${id} ${d}`);
          const live = new Set(
            held.filter((h) => h.kind === 'container' || h.kind === 'instance').map((h) => h.generation),
          );
          maxLiveGenerations = Math.max(maxLiveGenerations, live.size);
        } catch {
          // a listing during a daemon restart: the next sample counts
        }
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { samples, duplicates: [...seen], maxLiveGenerations };
    },
  };
}

/** One line per injected fault, printed by the tests and collected into docs/reliability.md. */
export interface FaultRecord {
  fault: string;
  backend: BackendKind;
  phase: 'provision' | 'restart' | 'delete';
  /** What had happened when the fault hit (phase, whether the resource existed). */
  at: string;
  outcome: string;
  /** Fault injected → desired state observed, information only (never asserted). */
  convergedMs: number;
}

export function report(r: FaultRecord): void {
  console.log(
    `[fault] ${r.fault} | ${r.backend} | ${r.phase} | at ${r.at} | ${r.outcome} | converged in ${(r.convergedMs / 1000).toFixed(1)} s`,
  );
}
