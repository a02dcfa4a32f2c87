/**
 * The worker's running totals as /metrics serves them (src/api/metrics.ts renderTotals over the
 * rows src/db/metrics.ts adds) : a histogram has every bucket, cumulative, zeros included; label
 * values are escaped; a counter is its value.
 */
import { describe, expect, it } from 'vitest';
import { renderTotals } from '../../src/api/metrics.js';
import {
  histogramRows,
  merged,
  OUTCOME_METRIC,
  PROVISION_BUCKETS,
  PROVISION_METRIC,
} from '../../src/db/metrics.js';

describe('metric totals', () => {
  it('renders a histogram with every bucket, cumulative, and its sum and count', () => {
    const labels = { backend: 'docker', phase: 'boot' };
    const text = renderTotals(
      merged([
        ...histogramRows(PROVISION_METRIC, PROVISION_BUCKETS, labels, 3),
        ...histogramRows(PROVISION_METRIC, PROVISION_BUCKETS, labels, 0.2),
      ]),
    );
    const bucket = (le: string) =>
      Number(
        new RegExp(
          `^${PROVISION_METRIC}_bucket\\{backend="docker",phase="boot",le="${le.replace('+', '\\+')}"\\} (\\S+)$`,
          'm',
        ).exec(text)?.[1],
      );
    expect(bucket('0.1')).toBe(0);
    expect(bucket('0.25')).toBe(1);
    expect(bucket('2.5')).toBe(1);
    expect(bucket('5')).toBe(2);
    expect(bucket('600')).toBe(2);
    expect(bucket('+Inf')).toBe(2);
    expect(text).toContain(`${PROVISION_METRIC}_sum{backend="docker",phase="boot"} 3.2`);
    expect(text).toContain(`${PROVISION_METRIC}_count{backend="docker",phase="boot"} 2`);
    expect(text.match(new RegExp(`^${PROVISION_METRIC}_bucket`, 'gm'))).toHaveLength(
      PROVISION_BUCKETS.length + 1,
    );
    expect(text).toContain(`# TYPE ${PROVISION_METRIC} histogram`);
  });

  it('renders counters with escaped label values', () => {
    const text = renderTotals([
      { name: OUTCOME_METRIC, labels: { workflow: 'a"b\\c', outcome: 'failed' }, series: '', value: 4 },
    ]);
    expect(text).toContain(`${OUTCOME_METRIC}{outcome="failed",workflow="a\\"b\\\\c"} 4`);
    expect(text).toContain(`# TYPE ${OUTCOME_METRIC} counter`);
  });
});
