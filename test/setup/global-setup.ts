/**
 * Starts the services every test run shares: a real PostgreSQL, a Temporal dev server, moto (the
 * EC2 API; test/ec2-sim boots its instances) and the Docker daemon, and builds the runtime image
 * (src/cli/build-images.ts). Runs once per `vitest run`, so any single test file also works alone.
 * Values reach tests through inject() (see context.ts) and process.env.
 */
import type { TestProject } from 'vitest/node';
import './context.js';
import { ensureRuntimeImage } from '../../src/cli/build-images.js';
import { ensureBundle } from '../../src/worker/bundle.js';
import { OUTCOME_INTERCEPTOR, workflowsPath } from '../../src/worker/index.js';
import { createFreshDatabase } from './databases.js';
import { leftoverResources } from './leaks.js';
import { ensureDockerDaemon, startMoto, startPostgres, startTemporal, type Log } from './services.js';

const log: Log = (message) => console.log(`[global-setup] ${message}`);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const cleanups: Array<{ name: string; fn: () => Promise<void> }> = [];
  const stopServices = async (): Promise<void> => {
    for (const { name, fn } of cleanups.reverse()) {
      await fn().catch((err: unknown) => log(`stopping ${name} failed: ${String(err)}`));
    }
  };
  // After the last file: fails the run on anything it left on dockerd (test/setup/leaks.ts).
  const teardown = async (): Promise<void> => {
    const leaks = await leftoverResources(new Date(started)).catch((err: unknown) => [
      `(dockerd did not list its resources: ${String(err)})`,
    ]);
    await stopServices();
    if (leaks.length > 0) {
      // Vitest logs a teardown's error ("error during close") but does not fail the run for it.
      process.exitCode = 1;
      throw new Error(
        `the run left ${leaks.length} docker resource(s) behind (or another process on this daemon made them since the run began):\n- ${leaks.join('\n- ')}`,
      );
    }
  };

  // Independent, so start them together; settle all before judging, so nothing started is leaked.
  const [postgres, temporal, moto, image, bundle] = await Promise.allSettled([
    startPostgres({ log }).then((s) => (cleanups.push({ name: 'postgres', fn: s.stop }), s)),
    startTemporal({ log }).then((s) => (cleanups.push({ name: 'temporal', fn: s.stop }), s)),
    startMoto({ log }).then((s) => (cleanups.push({ name: 'moto', fn: s.stop }), s)),
    ensureDockerDaemon({ log }).then(() =>
      ensureRuntimeImage({ log: (line) => log(`runtime image: ${line}`) }),
    ),
    // The workflow bundle every service worker of the run finds (src/worker/bundle.ts) instead of
    // running webpack at its start: about 3 s of CPU for each of the run's many stacks.
    ensureBundle(workflowsPath(), OUTCOME_INTERCEPTOR),
  ]);
  if (
    postgres.status === 'rejected' ||
    temporal.status === 'rejected' ||
    moto.status === 'rejected' ||
    image.status === 'rejected' ||
    bundle.status === 'rejected'
  ) {
    await stopServices();
    const reasons = [postgres, temporal, moto, image, bundle]
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)));
    throw new Error(`global setup failed:\n- ${reasons.join('\n- ')}`);
  }

  try {
    const db = await createFreshDatabase(postgres.value.adminUrl, 'run');
    const values = {
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: temporal.value.address,
      TEMPORAL_NAMESPACE: temporal.value.namespace,
      MOTO_ENDPOINT: moto.value.endpoint,
      RUNTIME_IMAGE: image.value,
    };
    for (const [key, value] of Object.entries(values) as Array<[keyof typeof values, string]>) {
      project.provide(key, value);
      // Forked test workers and the processes tests spawn inherit this.
      process.env[key] = value;
    }
    log(`ready in ${Date.now() - started} ms`);
  } catch (err) {
    await stopServices();
    throw err;
  }
  return teardown;
}
