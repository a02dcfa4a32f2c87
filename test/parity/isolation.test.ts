/**
 * Tenants are isolated (issue 7), the same test for each backend, and on docker for each
 * placement: a bridge per org, and one bridge shared by all with ICC off (the daemon's default
 * bridge under `dockerd --icc=false`, as ./dev starts it; a bridge of the test's own where the
 * daemon runs with ICC on). From inside org A's workspace (docker: exec in its container; ec2: exec
 * in the simulator's VM), org B's agent and a sibling of the same org are unreachable or refuse
 * (docker: ICC off; ec2: the agent's per-generation credential, since the simulator enforces no
 * security group). Through the proxy the calls still work. Then the resource's own hardening:
 * docker limits, no-new-privileges, capabilities and the network; EC2 the managed security group
 * admitting only the platform.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DescribeInstancesCommand, DescribeSecurityGroupsCommand } from '@aws-sdk/client-ec2';
import { randomUUID } from 'node:crypto';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ICC_OPTION, iccIsOff } from '../../src/backends/docker/network.js';
import { platformUrls } from '../../src/config.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { AGENT_CREDENTIAL_HEADER, agentCredential } from '../../src/security/agent-credential.js';
import { SecretBox } from '../../src/security/secrets.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import { motoClient, CONCURRENT_BLOCK, useParityStack, type ParityFixture } from './backends.js';
import { messageSend as send } from '../support/a2a-message.js';
import { hostContainer, run as runIn } from './workspace-shell.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const run = promisify(execFile);

const TEMPLATES = { small: { limits: { memoryMb: 256, cpus: 0.5, pids: 128 } } };

interface Ws {
  id: string;
  generation: number;
  instanceId: string;
  endpoint: string;
}

async function createOnline(t: ParityFixture, key: string, name: string, extra: object = {}): Promise<Ws> {
  const created = await t.stack.api.call('POST', '/v1/workspaces', {
    token: key,
    body: { name, backend: t.backend, ...extra },
  });
  expect(created.status).toBe(202);
  return waitForStatus(t.stack, key, created.body.id as string, 'online');
}

/** The address a neighbour would use: the container's IP on its network / the private IP. */
async function addressOf(t: ParityFixture, w: Ws): Promise<string> {
  if (t.backend === 'ec2') return new URL(w.endpoint).hostname;
  const info = await t.stack.docker.getContainer(`ws-${w.id}-g${w.generation}`).inspect();
  const ip = Object.values(info.NetworkSettings.Networks)[0]?.IPAddress;
  if (!ip) throw new Error(`container of ${w.id} has no IP`);
  return ip;
}

interface Outcome {
  /** HTTP status, or 0 when nothing answered (refused, dropped, timed out). */
  status: number;
  body?: string;
  error?: string;
}

/** Runs a fetch with node inside the workspace (as its terminal would) and reports the outcome. */
async function fetchFromInside(
  t: ParityFixture,
  from: Ws,
  url: string,
  headers: Record<string, string> = {},
): Promise<Outcome> {
  const script = `
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 4000);
    fetch(${JSON.stringify(url)}, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...${JSON.stringify(headers)} },
      body: ${JSON.stringify(JSON.stringify(send('direct')))},
      signal: ac.signal,
    }).then(async (r) => console.log(JSON.stringify({ status: r.status, body: (await r.text()).slice(0, 2000) })),
      (e) => console.log(JSON.stringify({ status: 0, error: String(e.cause?.code ?? e.name) })));`;
  const container =
    t.backend === 'docker'
      ? `ws-${from.id}-g${from.generation}`
      : await t.sim!.instanceContainer(from.instanceId);
  if (!container) throw new Error(`no container for ${from.id}`);
  const { stdout } = await run('docker', ['exec', container, 'node', '-e', script], { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Outcome;
}

const refusedOrUnreachable = (o: Outcome) => o.status === 0 || o.status === 401 || o.status === 403;

const VARIANTS = [
  { label: 'docker, a bridge per org', backend: 'docker', shared: false },
  { label: 'docker, one bridge with ICC off', backend: 'docker', shared: true },
  { label: 'ec2', backend: 'ec2', shared: false },
] as const;

describe.each(VARIANTS)('$label: tenant isolation', CONCURRENT_BLOCK, ({ backend, shared }) => {
  const env: Record<string, string> = { TEMPLATES: JSON.stringify(TEMPLATES) };
  let ownBridge: string | undefined;
  // Registered before the stack's hooks: runs before it starts, and (hooks unwind) after it stops.
  beforeAll(async () => {
    if (backend !== 'docker') return;
    if (!shared) env.DOCKER_WORKSPACE_NETWORK = 'per-org';
    else if (await iccIsOff(new Dockerode(), 'bridge')) env.DOCKER_WORKSPACE_NETWORK = 'bridge';
    else {
      ownBridge = `wo-test-icc-off-${randomUUID().slice(0, 8)}`;
      await new Dockerode().createNetwork({
        Name: ownBridge,
        Driver: 'bridge',
        Options: { [ICC_OPTION]: 'false' },
      });
      env.DOCKER_WORKSPACE_NETWORK = ownBridge;
    }
  });
  afterAll(async () => {
    if (ownBridge) await new Dockerode().getNetwork(ownBridge).remove();
  });
  const t = useParityStack(backend, { env });

  it("org A's workspace cannot call org B's agent (or its sibling's) directly; the proxy still can", async () => {
    const orgB = await createOrg(t.stack, 'org-b');
    const [a, sibling, b] = await Promise.all([
      createOnline(t, t.key, 'a'),
      createOnline(t, t.key, 'sibling'),
      createOnline(t, orgB.apiKey, 'b'),
    ]);

    // Docker: the network itself keeps them apart (ICC off), so nothing answers at all; the agent's
    // own refusal (401) would pass on a bridge that let them talk. EC2 (the sim enforces no
    // security group): the agent refuses a call without the proxy's credential.
    const isolated = (o: Outcome) => (backend === 'docker' ? o.status === 0 : refusedOrUnreachable(o));
    // The reproduction: from inside A, org B's agent at its backend address; and a sibling of A's
    // own org. One after the other would wait out the same timeout twice.
    const [cross, sameOrg] = await Promise.all([
      fetchFromInside(t, a, `http://${await addressOf(t, b)}:8080/`),
      fetchFromInside(t, a, `http://${await addressOf(t, sibling)}:8080/`),
    ]);
    expect(isolated(cross), JSON.stringify(cross)).toBe(true);
    expect(cross.body ?? '').not.toContain('received: direct');
    expect(isolated(sameOrg), JSON.stringify(sameOrg)).toBe(true);
    expect(sameOrg.body ?? '').not.toContain('received: direct');

    // The platform stays reachable from inside, and through it the sibling answers, with A as peer.
    const platform = platformUrls(t.stack.config, t.stack.service.port!)[backend];
    const token = await mintWorkspaceToken(t.stack.service.db.pool, a.id, a.generation);
    const proxied = await fetchFromInside(t, a, `${platform}/v1/workspaces/${sibling.id}/a2a`, {
      authorization: `Bearer ${token}`,
    });
    expect(proxied.status, JSON.stringify(proxied)).toBe(200);
    const answer = JSON.parse(proxied.body!);
    expect(answer.result.parts[0].text).toContain(`(${sibling.id})`);
    expect(answer.result.metadata.peer.id).toBe(a.id);
    // ...but org scoping still holds there: org B's workspace is not found for A.
    const scoped = await fetchFromInside(t, a, `${platform}/v1/workspaces/${b.id}/a2a`, {
      authorization: `Bearer ${token}`,
    });
    expect(scoped.status).toBe(404);

    // At the agent itself (from the host, which reaches every endpoint): only the proxy's
    // credential for this very generation opens it.
    const box = new SecretBox(t.stack.config.SECRETS_KEY);
    const direct = (credential?: string) =>
      fetch(b.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(credential === undefined ? {} : { [AGENT_CREDENTIAL_HEADER]: credential }),
        },
        body: JSON.stringify(send('from the host')),
        signal: AbortSignal.timeout(10_000),
      });
    expect((await direct()).status).toBe(401);
    expect((await direct(agentCredential(box, a.id, a.generation))).status).toBe(401);
    expect((await direct(agentCredential(box, b.id, b.generation + 1))).status).toBe(401);
    const card = await fetch(new URL('/.well-known/agent.json', b.endpoint), {
      signal: AbortSignal.timeout(10_000),
    });
    expect(card.status).toBe(401);
    const health = await fetch(new URL('/health', b.endpoint), { signal: AbortSignal.timeout(10_000) });
    expect(await health.json()).toEqual({ ok: true });
    const opened = await direct(agentCredential(box, b.id, b.generation));
    expect(opened.status).toBe(200);
    expect(
      ((await opened.json()) as { result: { parts: { text: string }[] } }).result.parts[0]!.text,
    ).toContain('received: from the host');
    // And the proxy presents it: org B's own key gets through.
    const viaProxy = await t.stack.api.call('POST', `/v1/workspaces/${b.id}/a2a`, {
      token: orgB.apiKey,
      body: send('through the proxy'),
    });
    expect(viaProxy.status).toBe(200);
  });

  it('the resource is hardened: limits, privileges and network (docker) / security group (ec2)', async () => {
    const org = await createOrg(t.stack, 'hardened');
    const [plain, small] = await Promise.all([
      createOnline(t, org.apiKey, 'plain'),
      createOnline(t, org.apiKey, 'small', { template: 'small' }),
    ]);

    if (backend === 'docker') {
      const inspect = (w: Ws) => t.stack.docker.getContainer(`ws-${w.id}-g${w.generation}`).inspect();
      const host = async (w: Ws) => (await inspect(w)).HostConfig;
      const network = shared ? env.DOCKER_WORKSPACE_NETWORK! : `wo-org-${org.id}`;
      for (const w of [plain, small]) {
        expect(Object.keys((await inspect(w)).NetworkSettings.Networks)).toEqual([network]);
      }
      const p = await host(plain);
      expect({ memory: p.Memory, swap: p.MemorySwap, cpus: p.NanoCpus, pids: p.PidsLimit }).toEqual({
        memory: 2048 * 1024 * 1024,
        swap: 2048 * 1024 * 1024,
        cpus: 1e9,
        pids: 1024,
      });
      const s = await host(small);
      expect({ memory: s.Memory, cpus: s.NanoCpus, pids: s.PidsLimit }).toEqual({
        memory: 256 * 1024 * 1024,
        cpus: 5e8,
        pids: 128,
      });
      for (const h of [p, s]) {
        // An init reaps orphans and forwards signals: the agent is not PID 1.
        expect(h.Init).toBe(true);
        expect(h.SecurityOpt).toContain('no-new-privileges:true');
        expect(h.CapDrop).toEqual(['ALL']);
        expect(h.CapAdd).not.toContain('NET_RAW');
      }
      const shell = await hostContainer(backend, t.stack.docker, plain.id, plain.generation);
      expect((await runIn(shell, ['cat', '/proc/1/comm'])).out.trim()).not.toBe('node');
      const net = await t.stack.docker.getNetwork(network).inspect();
      expect(net.Options?.[ICC_OPTION]).toBe('false');
      const orgNetwork = () =>
        t.stack.docker
          .getNetwork(`wo-org-${org.id}`)
          .inspect()
          .then(
            () => 200,
            (err: { statusCode?: number }) => err.statusCode,
          );
      if (!shared) {
        expect(net.Labels).toMatchObject({ 'wo.managed-by': 'workspace-orchestrator', 'wo.org-id': org.id });
      } else expect(await orgNetwork()).toBe(404); // none made: the shared bridge is the boundary

      // An org network goes with the org's last workspace; a shared one is not ours to remove.
      for (const w of [plain, small]) {
        expect(
          (await t.stack.api.call('DELETE', `/v1/workspaces/${w.id}`, { token: org.apiKey })).status,
        ).toBe(202);
      }
      await Promise.all([plain, small].map((w) => waitForStatus(t.stack, org.apiKey, w.id, 'deleted')));
      expect(await orgNetwork()).toBe(404);
      if (shared) expect((await t.stack.docker.getNetwork(network).inspect()).Name).toBe(network);
      return;
    }

    // EC2: both instances sit in the managed group, which admits only the platform.
    const ec2 = motoClient();
    const described = await ec2.send(
      new DescribeInstancesCommand({ InstanceIds: [plain.instanceId, small.instanceId] }),
    );
    const groups = new Set(
      (described.Reservations ?? [])
        .flatMap((r) => r.Instances ?? [])
        .flatMap((i) => (i.SecurityGroups ?? []).map((g) => g.GroupId)),
    );
    expect(groups.size).toBe(1);
    const [groupId] = [...groups];
    const sg = (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId!] })))
      .SecurityGroups![0]!;
    expect(sg.GroupName).toBe('wo-workspaces');
    expect(sg.Tags).toContainEqual({ Key: 'ManagedBy', Value: 'workspace-orchestrator' });
    const rules = (sg.IpPermissions ?? [])
      .map((r) => ({
        port: r.FromPort,
        to: r.ToPort,
        protocol: r.IpProtocol,
        sources: (r.IpRanges ?? []).map((x) => x.CidrIp),
        groups: r.UserIdGroupPairs ?? [],
      }))
      .sort((x, y) => (x.port ?? 0) - (y.port ?? 0));
    const platform = `${t.sim!.platformHost}/32`;
    expect(rules).toEqual([
      { port: 22, to: 22, protocol: 'tcp', sources: [platform], groups: [] },
      { port: 8080, to: 8080, protocol: 'tcp', sources: [platform], groups: [] },
    ]);
  });
});
