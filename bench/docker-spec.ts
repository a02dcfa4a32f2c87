/**
 * What each part of the product's container spec costs dockerd, against a bare create + start.
 *
 *   npx tsx bench/docker-spec.ts [--rounds 12]
 *
 * bench/provision.ts shows the product's own container spec (`DockerBackend.start` alone, its
 * "backend-direct" row) starting slower than the raw baseline's bare `docker run`; this bench says
 * which part of the spec that is. It needs only dockerd and the runtime image (no service, no
 * database): the options come from the product itself (`DockerBackend.containerCreateOptions`, the
 * org network from `ensureOrgNetwork`), and each variant is the product's options with groups of
 * fields taken out:
 *
 * - raw: none of the groups below (what is left: image, env, labels, the published agent port,
 *   the extra host, no restart policy: as the raw baseline of bench/provision.ts);
 * - each group alone on raw: the org network (`NetworkMode`: a bridge of the org's own, ICC off),
 *   the named volumes (`Mounts`, created beforehand as `start()` does), the limits (memory, swap,
 *   CPU, pids), the privileges (all capabilities dropped but a few, no-new-privileges);
 * - spec: the product's options whole.
 *
 * Per round, every variant once in a rotated order: `createContainer` and `container.start` timed
 * each (the container's agent cannot reach a platform here and stops trying on its own; only the
 * daemon's create and start are measured), then the container removed; the org network is removed
 * and created again once a round, timed (every org's first workspace creates it). One untimed
 * round first. Report (Markdown) to stdout and .data/bench-docker-spec.md, ending with one JSON
 * line: `{"bench":"docker-spec","rounds":…,"rawStartP50Ms":…,"createNetworkP50Ms":…,
 * "networkStartRatio":…,"volumesStartRatio":…,"limitsStartRatio":…,"privilegesStartRatio":…,
 * "specStartRatio":…,"specFirstRatio":…}` (ratios of p50s against raw's create + start;
 * `specFirstRatio` adds the network's creation, as an org's first workspace pays it). Everything it
 * makes carries the label `wo.bench-spec` and is removed in `finally`.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Dockerode from 'dockerode';
import { DockerBackend } from '../src/backends/docker/docker-backend.js';
import {
  DEFAULT_ORG_NETWORK_POOL,
  ensureOrgNetwork,
  removeOrgNetworkIfUnused,
} from '../src/backends/docker/network.js';
import { volumeNames, workspaceLabels } from '../src/backends/docker/names.js';
import { ensureRuntimeImage } from '../src/cli/build-images.js';
import { ensureDockerDaemon } from '../test/setup/services.js';
import { loadAvg, machineFacts, machineLines, parseInt, writeReport } from './bench-env.js';
import { fmt, guard, ms, pct, progress, row, runMain } from './provision-util.js';

const LABEL = 'wo.bench-spec';

/** Host config fields per group; a variant takes the groups it does not name out of the spec. */
const GROUPS = {
  network: ['NetworkMode'],
  volumes: ['Mounts'],
  limits: ['Memory', 'MemorySwap', 'NanoCpus', 'PidsLimit'],
  privileges: ['SecurityOpt', 'CapDrop', 'CapAdd'],
} as const;
type Group = keyof typeof GROUPS;
const GROUP_NAMES = Object.keys(GROUPS) as Group[];

const VARIANTS = ['raw', ...GROUP_NAMES, 'spec'] as const;
type Variant = (typeof VARIANTS)[number];

/** The spec with only `keep`'s groups left (all of them: the spec itself). */
function variantOptions(spec: Dockerode.ContainerCreateOptions, keep: readonly Group[]) {
  const host: Record<string, unknown> = { ...spec.HostConfig };
  for (const g of GROUP_NAMES) if (!keep.includes(g)) for (const field of GROUPS[g]) delete host[field];
  return { ...spec, Labels: { ...spec.Labels, [LABEL]: '1' }, HostConfig: host };
}

const keptGroups = (v: Variant): readonly Group[] => (v === 'spec' ? GROUP_NAMES : v === 'raw' ? [] : [v]);

interface Samples {
  create: number[];
  start: number[];
}

async function removeLabelled(docker: Dockerode, orgId: string, workspaceId: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [LABEL] } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  for (const name of Object.values(volumeNames(workspaceId))) {
    await docker
      .getVolume(name)
      .remove()
      .catch(() => undefined);
  }
  await removeOrgNetworkIfUnused(docker, orgId);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '12' } } });
  const rounds = parseInt('--rounds', values.rounds, 2, 1000);
  const command = ['npx tsx bench/docker-spec.ts', ...process.argv.slice(2)].join(' ');
  const date = new Date();
  const loadBefore = loadAvg();
  const docker = new Dockerode();
  await guard(ensureDockerDaemon({ log: progress }));
  const image = await guard(
    ensureRuntimeImage({ docker, log: (line) => progress(`runtime image: ${line}`) }),
  );
  const machine = await machineFacts(docker);

  const tag = randomBytes(4).toString('hex');
  const orgId = `benchspec${tag}`;
  const workspaceId = `bs${tag}`;
  const backend = new DockerBackend({ docker, image });
  const specFor = (network: string, i: number) =>
    backend.containerCreateOptions(
      {
        workspaceId,
        orgId,
        generation: i,
        runtime: 'default',
        platformUrl: 'http://127.0.0.1:9',
        mintBootstrapToken: () => Promise.resolve('unused'),
      },
      image,
      `wo_boot_${'x'.repeat(32)}`,
      network,
    );
  const samples = Object.fromEntries(
    VARIANTS.map((v): [Variant, Samples] => [v, { create: [], start: [] }]),
  ) as Record<Variant, Samples>;
  const createNetwork: number[] = [];

  try {
    const labels = workspaceLabels({ workspaceId, orgId });
    for (const name of Object.values(volumeNames(workspaceId))) {
      await docker.createVolume({ Name: name, Labels: { ...labels, [LABEL]: '1' } });
    }
    let generation = 0;
    for (let round = 0; round <= rounds; round++) {
      const timed = round > 0;
      progress(timed ? `round ${round} of ${rounds}` : 'warm-up round');
      // The network goes and comes back once a round (no container uses it between rounds).
      await removeOrgNetworkIfUnused(docker, orgId);
      let t = performance.now();
      const network = await guard(ensureOrgNetwork(docker, orgId, DEFAULT_ORG_NETWORK_POOL));
      if (timed) createNetwork.push(performance.now() - t);
      // Rotated, so that no variant always follows the same one.
      const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
      for (const v of order) {
        const opts = variantOptions(specFor(network, ++generation), keptGroups(v));
        t = performance.now();
        const container = await guard(docker.createContainer(opts));
        const created = performance.now();
        await guard(container.start());
        const started = performance.now();
        await container.remove({ force: true });
        if (timed) {
          samples[v].create.push(created - t);
          samples[v].start.push(started - created);
        }
      }
    }
  } finally {
    progress('cleaning up: containers, volumes and the org network this bench made');
    await removeLabelled(docker, orgId, workspaceId);
  }

  const p50 = (xs: number[]) =>
    pct(
      [...xs].sort((a, b) => a - b),
      50,
    );
  const p95 = (xs: number[]) =>
    pct(
      [...xs].sort((a, b) => a - b),
      95,
    );
  const both = (s: Samples) => s.create.map((c, i) => c + s.start[i]!);
  const rawBoth = p50(both(samples.raw));
  const netP50 = p50(createNetwork);
  const ratio = (v: Variant) => p50(both(samples[v])) / rawBoth;
  const lines = [
    '# Container spec cost (`bench/docker-spec.ts`)',
    '',
    `- Command: \`${command}\``,
    `- Date: ${date.toISOString()}`,
    ...machineLines(machine, loadBefore, loadAvg()),
    `- Runtime image: \`${image}\`; ${rounds} timed rounds after one untimed round`,
    '',
    'ms, p50 / p95 over the rounds; "× raw" = p50 of create + start against raw’s.',
    '',
    row(['variant', 'createContainer', 'container.start', 'create + start', '× raw']),
    row(['---', '---:', '---:', '---:', '---:']),
    ...VARIANTS.map((v) =>
      row([
        v === 'raw' || v === 'spec' ? v : `raw + ${v}`,
        `${ms(p50(samples[v].create))} / ${ms(p95(samples[v].create))}`,
        `${ms(p50(samples[v].start))} / ${ms(p95(samples[v].start))}`,
        `${ms(p50(both(samples[v])))} / ${ms(p95(both(samples[v])))}`,
        `${fmt(ratio(v))}×`,
      ]),
    ),
    '',
    `The org network's creation (\`ensureOrgNetwork\`, once per round): ${ms(netP50)} / ${ms(p95(createNetwork))} ms.`,
    `An org's first workspace (network creation + the spec's create + start) against raw: ${fmt((netP50 + p50(both(samples.spec))) / rawBoth)}×.`,
    '',
    '## Result line',
    '',
  ];
  const result = {
    bench: 'docker-spec',
    rounds,
    rawStartP50Ms: Number(rawBoth.toFixed(1)),
    createNetworkP50Ms: Number(netP50.toFixed(1)),
    networkStartRatio: Number(ratio('network').toFixed(3)),
    volumesStartRatio: Number(ratio('volumes').toFixed(3)),
    limitsStartRatio: Number(ratio('limits').toFixed(3)),
    privilegesStartRatio: Number(ratio('privileges').toFixed(3)),
    specStartRatio: Number(ratio('spec').toFixed(3)),
    specFirstRatio: Number(((netP50 + p50(both(samples.spec))) / rawBoth).toFixed(3)),
  };
  const out = await writeReport('bench-docker-spec.md', `${lines.join('\n')}\n${JSON.stringify(result)}\n`);
  progress(`report written to ${out}`);
}

runMain(main);
