/**
 * What a test run left on dockerd: the workspaces' containers, volumes and org networks, the
 * simulated EC2 VMs and the networks tests make for sims, and the containers tests start themselves,
 * created since `since` (the sims' shared network, wo-ec2-sim, is kept for the next, as the images
 * are). Global teardown fails the run on any: every file cleans up after itself, even when
 * it fails, so a leftover is a leak a user's service would have too, or a test that hides one.
 * Resources older than the run (a `./dev up` on the same daemon) are not the run's to judge.
 */
import Dockerode from 'dockerode';
import { LABEL, MANAGED_BY } from '../../src/backends/docker/names.js';
import { DEFAULT_NETWORK_NAME } from '../ec2-sim/network.js';

// The label the docker backend puts on everything it makes.
const MANAGED = `${LABEL.managedBy}=${MANAGED_BY}`;

export async function leftoverResources(since: Date, docker = new Dockerode()): Promise<string[]> {
  const after = (created: Date | number) =>
    (typeof created === 'number' ? created * 1000 : created.getTime()) >= since.getTime() - 1000;
  const containers = (
    await Promise.all(
      [MANAGED, 'wo.ec2-sim', 'wo.test'].map((label) =>
        docker.listContainers({ all: true, filters: { label: [label] } }),
      ),
    )
  ).flat();
  // The docker backend's volumes, and the sims' stand-ins for EBS data volumes.
  const Volumes = (
    await Promise.all(
      [MANAGED, 'wo.ec2-sim'].map(
        async (label) => (await docker.listVolumes({ filters: { label: [label] } })).Volumes ?? [],
      ),
    )
  ).flat();
  const networks = [
    ...(await docker.listNetworks({ filters: { label: [MANAGED] } })),
    ...(await docker.listNetworks({ filters: { label: ['wo.ec2-sim'] } })).filter(
      (n) => n.Name !== DEFAULT_NETWORK_NAME,
    ),
  ];
  return [
    ...new Map(
      containers
        .filter((c) => after(c.Created))
        .map((c) => [c.Id, `container ${c.Names[0]?.replace(/^\//, '') ?? c.Id} (${c.State})`]),
    ).values(),
    ...Volumes.filter((v) => after(new Date((v as { CreatedAt?: string }).CreatedAt ?? 0))).map(
      (v) => `volume ${v.Name}`,
    ),
    ...networks.filter((n) => after(new Date(n.Created))).map((n) => `network ${n.Name}`),
  ];
}
