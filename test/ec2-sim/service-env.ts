/** How the product is pointed at a running simulator: shared by the parity suite and the bench. */
import type { Ec2Sim } from './sim.js';

/** moto accepts any credentials; the AWS SDK only needs some. */
export const MOTO_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' } as const;

/** Service environment that enables the ec2 backend against `sim`. */
export function simServiceEnv(sim: Ec2Sim): Record<string, string> {
  return {
    ENABLED_BACKENDS: 'docker,ec2',
    EC2_ENDPOINT: sim.endpoint,
    EC2_AMI_ID: sim.amiId,
    // Without a subnet moto assigns addresses outside the VPC, which the simulator cannot boot.
    EC2_SUBNET_ID: sim.subnetId,
    EC2_PLATFORM_HOST: sim.platformHost,
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
  };
}
