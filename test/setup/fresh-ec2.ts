/**
 * Every test file starts on an empty EC2 world (vitest.config.ts setupFiles; files run one at a
 * time). moto keeps terminated instances for ever and every EC2 call filters all of them (about
 * 1 ms each, per page of a listing): a whole run left about 150 in it, which a simulator reads five
 * times a second, so the later files met a busier moto than the first ones. Reset, it is as fresh
 * as a run's first file; its default VPC comes back on the next call (same CIDR, new ids, which
 * each file reads from moto anyway).
 */
import { inject } from 'vitest';

const res = await fetch(`${inject('MOTO_ENDPOINT')}/moto-api/reset`, {
  method: 'POST',
  signal: AbortSignal.timeout(30_000),
});
if (!res.ok) throw new Error(`moto reset answered ${res.status}: ${await res.text()}`);
