/**
 * docker-compose.yml is validated without `docker compose` (not installed here): against the
 * Compose Specification schema (test/fixtures/compose-spec, from docker-compose 1.29.2), and for
 * what a schema cannot see: references between services, networks and volumes, the worker pool,
 * the ec2 profile, and the commands and settings the service image actually has.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT as ROOT, SEARCH_ATTRIBUTES, TEMPORAL_DYNAMIC_CONFIG } from '../setup/services.js';
import { loadCompose, type ComposeService as Service } from '../support/compose-file.js';
import { metricsAddresses } from '../../src/worker/metrics-address.js';

const SCHEMA = path.join(ROOT, 'test/fixtures/compose-spec/compose_spec.json');

const compose = loadCompose();
const services = compose.services;

/** The schema plus the formats docker-compose checks in code (compose/config/validation.py). */
function composeValidator(): Ajv.ValidateFunction {
  // draft 2019-09 $schema with draft-04 `id`s: ajv 6 reads it with meta-validation off.
  const ajv = new Ajv({ allErrors: true, schemaId: 'auto', validateSchema: false });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat(
    'ports',
    /^((\d{1,3}(\.\d{1,3}){3}|\[[\da-fA-F:]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  );
  ajv.addFormat('subnet_ip_address', /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/);
  return ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')) as object);
}

const dependencies = (s: Service): string[] =>
  Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
const networksOf = (s: Service): string[] =>
  Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {});

describe('docker-compose.yml', () => {
  it('is valid under the Compose Specification schema', () => {
    const validate = composeValidator();
    expect(validate(compose), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it('the validator rejects what compose would reject (so the pass above means something)', () => {
    const validate = composeValidator();
    const broken = structuredClone(compose);
    (broken.services.api as Record<string, unknown>).replica = 2;
    broken.services.worker!.deploy = { replicas: 'two' as unknown as number };
    broken.services.api!.ports = ['80:80:80:80'];
    expect(validate(broken)).toBe(false);
    const paths = (validate.errors ?? []).map((e) => `${e.dataPath} ${e.message}`);
    expect(paths.some((p) => p.includes("['api']") && p.includes('additional properties'))).toBe(true);
    expect(paths.some((p) => p.includes('deploy.replicas'))).toBe(true);
    expect(paths.some((p) => p.includes('ports'))).toBe(true);
  });

  it('has PostgreSQL, Temporal on PostgreSQL, the Temporal UI, the API and two workers', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['db', 'temporal-db', 'temporal', 'temporal-ui', 'api', 'worker']),
    );
    expect(services.temporal!.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'temporal-db' });
    expect(services['temporal-ui']!.environment).toMatchObject({ TEMPORAL_ADDRESS: 'temporal:7233' });
    expect(services.worker!.deploy?.replicas).toBe(2);
    // API and workers: one image, two commands, the built entry points of src/api and src/worker.
    expect(services.api!.image).toBe(services.worker!.image);
    expect(services.api!.command).toEqual(['node', 'dist/api/main.js']);
    expect(services.worker!.command).toEqual(['node', 'dist/worker/main.js']);
    for (const entry of ['src/api/main.ts', 'src/worker/main.ts'])
      expect(existsSync(path.join(ROOT, entry))).toBe(true);
  });

  it("runs the API and the workers in the host's network, reaching PostgreSQL and Temporal on its loopback", () => {
    // A Docker workspace's agent is published on the host's loopback only; the API (A2A proxy) and
    // the workers (schedule deliveries, plugin reloads) call that recorded endpoint.
    /** The loopback port `service` publishes for `containerPort`. */
    const loopbackPort = (service: string, containerPort: number) =>
      (services[service]!.ports ?? [])
        .map((p) => /^127\.0\.0\.1:(\d+):(\d+)$/.exec(p))
        .find((m) => m && Number(m[2]) === containerPort)?.[1];
    for (const name of ['api', 'worker']) {
      const s = services[name]!;
      expect(s.network_mode, name).toBe('host');
      // Compose refuses networks beside network_mode, and ignores ports with it.
      expect(s.networks, name).toBeUndefined();
      expect(s.ports, name).toBeUndefined();
      const db = new URL(String(s.environment?.DATABASE_URL));
      expect(db.hostname).toBe('127.0.0.1');
      expect(db.port).toBe(loopbackPort('db', 5432));
      const [host, port] = String(s.environment?.TEMPORAL_ADDRESS).split(':');
      expect(host).toBe('127.0.0.1');
      expect(port).toBe(loopbackPort('temporal', 7233));
      // In the host's network a wildcard would serve the SDK's metrics to every interface.
      expect(String(s.environment?.WORKER_METRICS_ADDRESS ?? '127.0.0.1:9464')).toMatch(/^127\.0\.0\.1:/);
    }
    expect(loopbackPort('db', 5432)).toBe('5433');
  });

  it('gives every worker replica a metrics port of its own on the shared host network', () => {
    const setting = String(services.worker!.environment?.WORKER_METRICS_ADDRESS);
    const addresses = metricsAddresses(setting);
    expect(addresses, setting).not.toBeNull();
    expect(addresses!.length).toBeGreaterThanOrEqual(services.worker!.deploy?.replicas ?? 1);
    // The API's /metrics (its process runs no worker) appends every replica's page (api.md).
    const pages = String(services.api!.environment?.WORKER_METRICS_URL).split(',');
    expect(pages).toHaveLength(services.worker!.deploy?.replicas ?? 1);
    expect(pages).toEqual(addresses!.slice(0, pages.length).map((a) => `http://${a}/metrics`));
  });

  it('references only services, networks and volumes it declares', () => {
    const names = new Set(Object.keys(services));
    const networks = new Set(['default', ...Object.keys(compose.networks ?? {})]);
    const volumes = new Set(Object.keys(compose.volumes ?? {}));
    for (const [name, s] of Object.entries(services)) {
      for (const dep of dependencies(s)) expect(names.has(dep), `${name} depends on ${dep}`).toBe(true);
      for (const net of networksOf(s)) expect(networks.has(net), `${name} joins network ${net}`).toBe(true);
      for (const volume of s.volumes ?? []) {
        const from = volume.split(':')[0]!;
        // A bind mount starts with / or .; anything else is a named volume and must be declared.
        if (!/^[./]/.test(from)) expect(volumes.has(from), `${name} mounts volume ${from}`).toBe(true);
        else if (from.startsWith('./'))
          expect(existsSync(path.join(ROOT, from)), `${name} mounts ${from}`).toBe(true);
      }
      // A service of the default profile must not wait for one that only runs with a profile.
      if (!s.profiles) {
        for (const dep of dependencies(s))
          expect(services[dep]!.profiles, `${name} → ${dep}`).toBeUndefined();
      }
    }
  });

  it('puts moto and ec2-sim, and only them, in the ec2 profile', () => {
    const inProfile = Object.entries(services)
      .filter(([, s]) => s.profiles?.includes('ec2'))
      .map(([name]) => name)
      .sort();
    expect(inProfile).toEqual(['ec2-sim', 'moto']);
    expect(services['ec2-sim']!.command?.join(' ')).toContain('test/ec2-sim/main.ts');
    expect(existsSync(path.join(ROOT, 'test/ec2-sim/main.ts'))).toBe(true);
  });

  it('runs the service as its image user with the docker socket group, and needs its secrets', () => {
    for (const name of ['api', 'worker']) {
      const s = services[name]!;
      expect(s.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock');
      expect(s.group_add?.[0]).toMatch(/^\$\{DOCKER_GID:\?/);
      for (const key of ['ADMIN_TOKEN', 'SECRETS_KEY', 'RUNTIME_IMAGE']) {
        expect(String(s.environment?.[key])).toMatch(new RegExp(`^\\$\\{${key}:\\?`));
      }
    }
  });

  it('registers every search attribute the workflows upsert', () => {
    const script = (services['temporal-setup']!.command ?? []).join(' ');
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) expect(script).toContain(`${name}=${type}`);
  });

  it('gives its Temporal server the dynamic config that ./dev and the test stacks give theirs', () => {
    const mount = (services.temporal!.volumes ?? []).find(
      (v) => v.endsWith(':ro') && v.includes('dynamicconfig'),
    );
    const file = mount?.split(':')[0];
    expect(file, 'the dynamic config file mounted into temporal').toBeDefined();
    expect(String(services.temporal!.environment?.DYNAMIC_CONFIG_FILE_PATH)).toBe(
      `config/dynamicconfig/${path.basename(mount!.split(':')[1]!)}`,
    );
    const values = parseYaml(readFileSync(path.join(ROOT, file!), 'utf8')) as Record<
      string,
      Array<{ value: unknown }>
    >;
    expect(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v[0]?.value]))).toEqual(
      TEMPORAL_DYNAMIC_CONFIG,
    );
    // The CLI takes each value as JSON (a duration is a quoted string); the script may quote it for bash.
    const dev = readFileSync(path.join(ROOT, 'dev'), 'utf8').replaceAll("'", '');
    for (const [key, value] of Object.entries(TEMPORAL_DYNAMIC_CONFIG)) {
      expect(dev).toContain(`--dynamic-config-value ${key}=${JSON.stringify(value)}`);
    }
  });
});
