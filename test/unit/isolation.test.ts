/**
 * The pure parts of tenant isolation: the agent credential's derivation, per-org subnet carving,
 * the managed security group's rules and the settings that feed them.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, ec2PlatformCidr, loadConfig } from '../../src/config.js';
import { parsePool, parseWorkspaceNetworking, subnetAt } from '../../src/backends/docker/network.js';
import { ingressRules } from '../../src/backends/ec2/security-group.js';
import { agentCredential } from '../../src/security/agent-credential.js';
import { SecretBox } from '../../src/security/secrets.js';

const base = {
  ADMIN_TOKEN: 'a'.repeat(32),
  SECRETS_KEY: randomBytes(32).toString('base64'),
  RUNTIME_IMAGE: 'wo-runtime:test',
  DATA_DIR: '/tmp/wo-config-test',
};

describe('agent credential', () => {
  it('is stable per (workspace, generation), differs across them and across keys', () => {
    const box = new SecretBox(base.SECRETS_KEY);
    const c = agentCredential(box, 'ws1', 1);
    expect(agentCredential(new SecretBox(base.SECRETS_KEY), 'ws1', 1)).toBe(c);
    expect(c).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const others = [
      agentCredential(box, 'ws1', 2),
      agentCredential(box, 'ws2', 1),
      // No ambiguity from the separator: "ws1:1" vs "ws1:" + "1" cannot be produced by another id.
      agentCredential(box, 'ws1:1', 1),
      agentCredential(new SecretBox(randomBytes(32).toString('base64')), 'ws1', 1),
    ];
    for (const o of others) expect(o).not.toBe(c);
    // The derived key is not the secrets key itself.
    expect(box.deriveKey('agent-a2a-credential').equals(Buffer.from(base.SECRETS_KEY, 'base64'))).toBe(false);
  });
});

describe('per-org docker subnets', () => {
  it('carves the pool into subnets of the prefix and wraps around', () => {
    const pool = { cidr: '10.213.0.0/16', prefix: 24 };
    expect(parsePool(pool)).toMatchObject({ count: 256, size: 256 });
    expect(subnetAt(pool, 0)).toBe('10.213.0.0/24');
    expect(subnetAt(pool, 7)).toBe('10.213.7.0/24');
    expect(subnetAt(pool, 256 + 3)).toBe('10.213.3.0/24');
    expect(subnetAt({ cidr: '10.213.5.9/16', prefix: 26 }, 5)).toBe('10.213.1.64/26');
  });

  it('refuses pools that cannot be carved', () => {
    expect(() => parsePool({ cidr: '10.0.0.0/16', prefix: 12 })).toThrow(/does not fit/);
    expect(() => parsePool({ cidr: '10.0.0/16', prefix: 24 })).toThrow(/IPv4/);
    expect(() => parsePool({ cidr: '10.0.0.0/40', prefix: 24 })).toThrow(/CIDR/);
  });
});

describe('managed EC2 security group', () => {
  it('admits only the platform CIDR, on SSH and the agent port', () => {
    expect(ingressRules({ platformCidr: '172.31.255.254/32', sshPort: 22, agentPort: 8080 })).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 22,
        ToPort: 22,
        IpRanges: [expect.objectContaining({ CidrIp: '172.31.255.254/32' })],
      }),
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 8080,
        ToPort: 8080,
        IpRanges: [expect.objectContaining({ CidrIp: '172.31.255.254/32' })],
      }),
    ]);
  });

  it('takes its source from EC2_PLATFORM_CIDR, else the platform host as a /32', () => {
    expect(ec2PlatformCidr(loadConfig({ ...base, EC2_PLATFORM_CIDR: '10.0.0.0/24' }))).toBe('10.0.0.0/24');
    expect(ec2PlatformCidr(loadConfig({ ...base, EC2_PLATFORM_HOST: '172.31.255.254' }))).toBe(
      '172.31.255.254/32',
    );
    expect(ec2PlatformCidr(loadConfig({ ...base, EC2_PLATFORM_URL: 'http://10.1.2.3:8080' }))).toBe(
      '10.1.2.3/32',
    );
    // A DNS name is no CIDR: no managed group then (configured groups or the VPC default apply).
    expect(
      ec2PlatformCidr(loadConfig({ ...base, EC2_PLATFORM_URL: 'http://platform.internal:8080' })),
    ).toBeUndefined();
    expect(() => loadConfig({ ...base, EC2_PLATFORM_CIDR: 'everyone' })).toThrow(ConfigError);
  });
});

describe('template limits', () => {
  it('accepts limits per template and refuses nonsense', () => {
    const c = loadConfig({
      ...base,
      TEMPLATES: JSON.stringify({ small: { limits: { memoryMb: 256, cpus: 0.5, pids: 64 } } }),
    });
    expect(c.TEMPLATES.small?.limits).toEqual({ memoryMb: 256, cpus: 0.5, pids: 64 });
    for (const limits of [{ memoryMb: 1 }, { cpus: 0 }, { pids: 2 }, { memoryMb: 256.5 }, { swap: 1 }]) {
      expect(
        () => loadConfig({ ...base, TEMPLATES: JSON.stringify({ t: { limits } }) }),
        JSON.stringify(limits),
      ).toThrow(ConfigError);
    }
    expect(() => loadConfig({ ...base, DOCKER_ORG_NETWORK_POOL: '10.0.0.0/28' })).toThrow(ConfigError);
  });
});

describe('docker workspace placement (DOCKER_WORKSPACE_NETWORK)', () => {
  it('is auto by default; takes per-org or a network name; refuses anything else, naming the setting', () => {
    expect(loadConfig(base).DOCKER_WORKSPACE_NETWORK).toBe('auto');
    expect(loadConfig({ ...base, DOCKER_WORKSPACE_NETWORK: 'per-org' }).DOCKER_WORKSPACE_NETWORK).toBe(
      'per-org',
    );
    expect(loadConfig({ ...base, DOCKER_WORKSPACE_NETWORK: 'bridge' }).DOCKER_WORKSPACE_NETWORK).toEqual({
      shared: 'bridge',
    });
    expect(parseWorkspaceNetworking('tenants_1.a-b')).toEqual({ shared: 'tenants_1.a-b' });
    for (const bad of ['', '-x', 'a b', 'a/b', 'x'.repeat(129)]) {
      expect(() => loadConfig({ ...base, DOCKER_WORKSPACE_NETWORK: bad }), bad).toThrow(
        /DOCKER_WORKSPACE_NETWORK: .* is neither auto, per-org nor a Docker network name/,
      );
    }
  });
});
