/**
 * What a schedule's cron and timezone may be (src/schedules/spec.ts) and the bodies the routes
 * accept: every refusal names its field, accepted values become the Temporal spec they mean.
 */
import { describe, expect, test } from 'vitest';
import { createScheduleBody, patchScheduleBody, PROMPT_MAX_CHARS } from '../../src/api/routes/schedules.js';
import {
  fingerprint,
  parseWorkspaceScheduleId,
  scheduleDefinition,
  specRefusal,
  workspaceScheduleId,
} from '../../src/schedules/mirror.js';
import { ScheduleSpecError, parseCron, parseTimezone, temporalSpec } from '../../src/schedules/spec.js';
import { TZDB_NAMES } from '../../src/schedules/tz-names.js';

const MIN = 60_000;

function refusal(fn: () => unknown): ScheduleSpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ScheduleSpecError) return err;
    throw err;
  }
  throw new Error('expected a ScheduleSpecError');
}

describe('cron', () => {
  test.each([
    ['* * * * *', '* * * * *'],
    ['0 9 * * MON-FRI', '0 9 * * MON-FRI'],
    ['*/15 0-6,18-23 1,15 jan-jun 0', '*/15 0-6,18-23 1,15 jan-jun 0'],
    ['  30   4 1 * 7 ', '30 4 1 * 7'],
    ['5/10 * * * *', '5/10 * * * *'],
    // Dates that exist: 29 February (leap years), the 31st of a long month in a list, a step into one.
    ['0 0 29 2 *', '0 0 29 2 *'],
    ['0 0 31 2,4,7 *', '0 0 31 2,4,7 *'],
    ['0 0 30-31 FEB-MAR *', '0 0 30-31 FEB-MAR *'],
    ['0 0 31 2/5 *', '0 0 31 2/5 *'],
    ['0 0 13 * FRI', '0 0 13 * FRI'],
    ['@daily', '@daily'],
    ['@HOURLY', '@hourly'],
  ])('%j is accepted as %j', (raw, expression) => {
    expect(parseCron(raw, MIN)).toEqual({ kind: 'cron', expression });
  });

  test.each([
    ['@every 90s', 90_000],
    ['@every 5m', 300_000],
    ['@every 2h', 7_200_000],
    ['@every 1d', 86_400_000],
  ])('%j is an interval of %d ms', (raw, everyMs) => {
    expect(parseCron(raw, MIN)).toEqual({ kind: 'every', everyMs });
  });

  test.each([
    ['', 'empty'],
    ['* * * *', '5 fields'],
    ['0 * * * * *', '5 fields'],
    ['0 0 * * * * 2030', '5 fields'],
    ['60 * * * *', 'outside 0-59'],
    ['* 24 * * *', 'outside 0-23'],
    ['* * 0 * *', 'outside 1-31'],
    ['* * * 13 *', 'outside 1-12'],
    ['* * * * 8', 'outside 0-7'],
    ['* * * * FUNDAY', 'not a number or a day of week name'],
    ['* * * MONDAY *', 'not a number or a month name'],
    ['5-1 * * * *', 'backwards'],
    ['*/0 * * * *', 'at least 1'],
    ['1,,2 * * * *', 'empty list item'],
    ['1-2-3 * * * *', 'a range is'],
    ['*/5/2 * * * *', 'more than one'],
    ['a * * * *', 'not a number'],
    ['CRON_TZ=UTC 0 * * * *', '5 fields'],
    ['@reboot', 'unknown shorthand'],
    ['@every', '@every <n>'],
    ['@every 1.5m', '@every <n>'],
    ['@every 10x', '@every <n>'],
    ['@every 30s', 'at least 60 seconds'],
    ['@every 400d', 'at most 366 days'],
    ['x'.repeat(201), 'at most 200'],
    // Dates that never come: the schedule would never fire.
    ['0 0 30 2 *', 'never fire'],
    ['0 0 30,31 FEB *', 'never fire'],
    ['0 0 31 4,6,9,11 *', 'never fire'],
    ['0 0 31 4/5 *', 'never fire'], // April and September
    ['0 0 30-31 2 MON', 'never fire'],
  ])('%j is refused (%s), naming cron', (raw, why) => {
    const err = refusal(() => parseCron(raw, MIN));
    expect(err.field).toBe('cron');
    expect(err.message).toContain(why);
  });

  test('a stored cron that can never fire (saved before the check) still becomes its spec', () => {
    expect(temporalSpec('0 0 30 2 *', 'UTC')).toEqual({ cronExpressions: ['0 0 30 2 *'], timezone: 'UTC' });
  });

  test('the @every floor is the deployment setting', () => {
    expect(parseCron('@every 2s', 1000)).toEqual({ kind: 'every', everyMs: 2000 });
    expect(refusal(() => parseCron('@every 2s', 5000)).message).toContain('at least 5 seconds');
  });
});

describe('timezone', () => {
  test.each([
    ['UTC', 'UTC'],
    ['utc', 'UTC'],
    ['Europe/Paris', 'Europe/Paris'],
    ['America/Argentina/Buenos_Aires', 'America/Argentina/Buenos_Aires'],
    ['europe/paris', 'Europe/Paris'],
    [' Europe/Paris ', 'Europe/Paris'],
    // Links of the tz database that Intl does not list: kept as given, in its spelling.
    ['US/Pacific', 'US/Pacific'],
    ['asia/kolkata', 'Asia/Kolkata'],
    ['Asia/Calcutta', 'Asia/Calcutta'],
    ['Europe/Kyiv', 'Europe/Kyiv'],
    ['etc/utc', 'Etc/UTC'],
    ['Etc/GMT+5', 'Etc/GMT+5'],
    ['EST5EDT', 'EST5EDT'],
  ])('%j is accepted as %j', (raw, canonical) => {
    expect(parseTimezone(raw)).toBe(canonical);
  });

  test.each(['', 'Mars/Olympus_Mons', '+01:00', 'UTC+1', '../etc/passwd', 'Local', 'x'.repeat(65)])(
    '%j is refused, naming timezone',
    (raw) => {
      expect(refusal(() => parseTimezone(raw)).field).toBe('timezone');
    },
  );

  // Intl (ICU) takes these; the tz database, and so Temporal's server, does not.
  test.each(['US/Pacific-New', 'SystemV/AST4', 'Canada/East-Saskatchewan', 'PST', 'IST', 'ACT', 'Factory'])(
    '%j (not in the tz database) is refused, naming timezone',
    (raw) => {
      const err = refusal(() => parseTimezone(raw));
      expect(err.field).toBe('timezone');
    },
  );

  test('every name of the pinned tz database list is accepted as itself, and Intl lists no other', () => {
    for (const name of TZDB_NAMES) expect(parseTimezone(name)).toBe(name);
    expect(Intl.supportedValuesOf('timeZone').filter((z) => !TZDB_NAMES.has(z))).toEqual([]);
  });

  test("Temporal's refusal of a spec names its field; other failures are not refusals", () => {
    // As the SDK throws it: a TypeError from its rethrowGrpcError.
    const sdk = (message: string) =>
      Object.assign(new TypeError(message), {
        stack: `TypeError: ${message}\n    at ScheduleClient.rethrowGrpcError (schedule-client.js:386:23)`,
      });
    expect(specRefusal(sdk('unknown time zone Europe/Kyiv'))).toMatchObject({ field: 'timezone' });
    expect(specRefusal(sdk('invalid cron expression'))).toMatchObject({ field: 'cron' });
    // A bug's TypeError is no refusal.
    expect(specRefusal(new TypeError('x.get is not a function'))).toBeNull();
    const grpc = (code: number, details: string) =>
      Object.assign(new Error('Failed to update schedule'), { cause: { code, details } });
    expect(specRefusal(grpc(3, 'Invalid schedule spec: unknown time zone X'))).toMatchObject({
      field: 'timezone',
    });
    expect(specRefusal(grpc(3, 'memo too large'))).toBeNull();
    expect(specRefusal(grpc(14, 'Invalid schedule spec: ?'))).toBeNull();
    expect(specRefusal(new Error('14 UNAVAILABLE'))).toBeNull();
  });
});

describe('Temporal spec', () => {
  test('a cron keeps its zone; an interval needs none', () => {
    expect(temporalSpec('0 9 * * 1-5', 'Europe/Paris')).toEqual({
      cronExpressions: ['0 9 * * 1-5'],
      timezone: 'Europe/Paris',
    });
    expect(temporalSpec('@every 3s', 'Europe/Paris')).toEqual({ intervals: [{ every: 3000 }] });
  });

  test('the definition: id, paused state, no prompt, fingerprint of what it was built from', () => {
    const row = {
      id: 'b'.repeat(16),
      workspaceId: 'a'.repeat(16),
      cron: '@every 5m',
      timezone: 'UTC',
      enabled: false,
    };
    const d = scheduleDefinition(row, 'q');
    expect(d.scheduleId).toBe(`workspace:${'a'.repeat(16)}:schedule:${'b'.repeat(16)}`);
    expect(d.action.args).toEqual([{ workspaceId: row.workspaceId, scheduleId: row.id }]);
    expect(d.action.taskQueue).toBe('q');
    expect(d.state.paused).toBe(true);
    expect(d.state.note).toBe(fingerprint(row, 'q'));
    expect(fingerprint({ ...row, enabled: true }, 'q')).not.toBe(fingerprint(row, 'q'));
    expect(fingerprint(row, 'other')).not.toBe(fingerprint(row, 'q'));
    expect(JSON.stringify(d)).not.toContain('prompt');
  });

  test('schedule ids parse back; other ids are not ours', () => {
    const id = workspaceScheduleId('0123456789abcdef', 'fedcba9876543210');
    expect(parseWorkspaceScheduleId(id)).toEqual({
      workspaceId: '0123456789abcdef',
      scheduleId: 'fedcba9876543210',
    });
    expect(parseWorkspaceScheduleId('sweep:health')).toBeNull();
    expect(parseWorkspaceScheduleId(`x${id}`)).toBeNull();
  });
});

describe('bodies', () => {
  const field = (schema: typeof createScheduleBody | typeof patchScheduleBody, body: unknown) => {
    const r = schema.safeParse(body);
    return r.success ? null : r.error.issues[0]!.path.join('.');
  };

  test('create needs cron and a non-blank prompt; unknown fields are refused', () => {
    expect(field(createScheduleBody, { cron: '@daily', prompt: 'hi' })).toBeNull();
    expect(field(createScheduleBody, { prompt: 'hi' })).toBe('cron');
    expect(field(createScheduleBody, { cron: '@daily' })).toBe('prompt');
    expect(field(createScheduleBody, { cron: '@daily', prompt: '   ' })).toBe('prompt');
    expect(field(createScheduleBody, { cron: '@daily', prompt: 'x'.repeat(PROMPT_MAX_CHARS + 1) })).toBe(
      'prompt',
    );
    expect(field(createScheduleBody, { cron: '@daily', prompt: 'a\u0000b' })).toBe('prompt');
    expect(field(createScheduleBody, { cron: '@daily', prompt: 'hi', enabled: 'yes' })).toBe('enabled');
    expect(field(createScheduleBody, { cron: '@daily', prompt: 'hi', timezone: 5 })).toBe('timezone');
    expect(field(createScheduleBody, { cron: '@daily', prompt: 'hi', every: 5 })).toBe('');
  });

  test('a patch changes at least one known field', () => {
    expect(field(patchScheduleBody, { enabled: false })).toBeNull();
    expect(field(patchScheduleBody, {})).toBe('');
    expect(field(patchScheduleBody, { prompt: '' })).toBe('prompt');
  });
});
