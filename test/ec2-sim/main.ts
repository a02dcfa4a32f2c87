/**
 * ec2-sim standalone (what `./dev up --ec2-sim` runs next to moto):
 *
 *   npx tsx test/ec2-sim/main.ts --moto http://127.0.0.1:5000 --port 5001 [--write-env .data/ec2-sim.env]
 *     [--network wo-ec2-sim] [--poll-ms 200] [--boot-delay-ms N] [--user-data-delay-ms N]
 *     [--region us-east-1]
 *
 * Builds the runtime and VM images if needed, starts the sim, prints the settings the service needs
 * (EC2_ENDPOINT, EC2_PLATFORM_HOST, EC2_SUBNET_ID, EC2_AMI_ID) on stdout as KEY=value lines (and
 * into --write-env once ready), logs to stderr, and on SIGINT/SIGTERM removes its containers.
 */
import { writeFile, rename } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import Dockerode from 'dockerode';
import { startEc2Sim } from './sim.js';
import { ensureVmImage } from './vm-image.js';

const log = (line: string): void => {
  process.stderr.write(`[ec2-sim] ${line}\n`);
};

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--${name} must be a non-negative integer, got ${value}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      moto: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      network: { type: 'string' },
      region: { type: 'string' },
      'poll-ms': { type: 'string' },
      'boot-delay-ms': { type: 'string' },
      'user-data-delay-ms': { type: 'string' },
      'write-env': { type: 'string' },
    },
    strict: true,
  });
  if (!values.moto) throw new Error('--moto <url of moto_server> is required');

  const docker = new Dockerode();
  const vmImage = await ensureVmImage({ docker, log: (l) => log(`image: ${l}`) });
  const sim = await startEc2Sim({
    motoEndpoint: values.moto,
    docker,
    vmImage,
    port: intOption(values.port, 'port'),
    host: values.host,
    region: values.region,
    network: values.network ? { name: values.network } : undefined,
    pollMs: intOption(values['poll-ms'], 'poll-ms'),
    // Standalone, the sim is the only one on its moto: boot whatever moto already holds too.
    adoptExisting: true,
    defaults: {
      bootDelayMs: intOption(values['boot-delay-ms'], 'boot-delay-ms'),
      userDataDelayMs: intOption(values['user-data-delay-ms'], 'user-data-delay-ms'),
    },
    log,
  });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping (removing this sim's instance containers)`);
    sim.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log(`stop failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  const settings = [
    `EC2_ENDPOINT=${sim.endpoint}`,
    `EC2_PLATFORM_HOST=${sim.platformHost}`,
    `EC2_SUBNET_ID=${sim.subnetId}`,
    `EC2_AMI_ID=${sim.amiId}`,
    `EC2_REGION=${sim.region}`,
  ].join('\n');
  process.stdout.write(`${settings}\n`);
  if (values['write-env']) {
    // Atomic: whoever waits for the file never reads half of it.
    const tmp = `${values['write-env']}.${process.pid}.tmp`;
    await writeFile(tmp, `${settings}\n`);
    await rename(tmp, values['write-env']);
  }
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
