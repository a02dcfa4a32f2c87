/**
 * What a schedule's `cron` and `timezone` may be, checked before anything is stored, and the
 * Temporal ScheduleSpec they become. Pure: unit tested without Temporal.
 *
 * Accepted `cron`:
 * - five fields `minute hour day-of-month month day-of-week`, each `*`, a value, a range `a-b`, any
 *   of those with a step `/n`, or a comma list of them; months also as JAN..DEC, days of week as
 *   SUN..SAT (0 and 7 are Sunday). Temporal matches day-of-month AND day-of-week (no cron "or").
 * - `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
 * - `@every <n><s|m|h|d>`: a fixed interval (Temporal IntervalSpec), at least the deployment's
 *   SCHEDULE_MIN_INTERVAL_MS (one minute by default, as cron's resolution; lower only in tests).
 * Temporal's other forms (6/7 fields with year and seconds, a `CRON_TZ=` prefix, `#` comments) are
 * refused: the zone is the `timezone` field, and a sixth field means seconds in some crons and
 * years in Temporal's.
 */

import { TZDB_NAMES } from './tz-names.js';

export const CRON_MAX_CHARS = 200;
export const TIMEZONE_MAX_CHARS = 64;

export type ParsedCron = { kind: 'cron'; expression: string } | { kind: 'every'; everyMs: number };

export class ScheduleSpecError extends Error {
  constructor(
    readonly field: 'cron' | 'timezone',
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldRule {
  name: string;
  min: number;
  max: number;
  /** Names accepted for values, the first one standing for `min` (or 0 for days). */
  names?: string[];
  namesFrom?: number;
}

const FIELDS: FieldRule[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, namesFrom: 1 },
  { name: 'day of week', min: 0, max: 7, names: DAYS, namesFrom: 0 },
];

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** Longest `@every`: a year (longer is a typo, and Temporal's duration math stays far from limits). */
const EVERY_MAX_MS = 366 * UNIT_MS.d!;

/**
 * Parses and checks `cron`; throws ScheduleSpecError (field `cron`) with the reason. `mustFire`
 * off is for values stored before that check existed (they are mirrored as they were saved).
 */
export function parseCron(raw: string, minIntervalMs: number, mustFire = true): ParsedCron {
  const cron = raw.trim().replace(/\s+/g, ' ');
  if (cron.length === 0) throw new ScheduleSpecError('cron', 'must not be empty');
  if (cron.length > CRON_MAX_CHARS)
    throw new ScheduleSpecError('cron', `at most ${CRON_MAX_CHARS} characters`);
  if (cron.startsWith('@every')) return { kind: 'every', everyMs: parseEvery(cron, minIntervalMs) };
  if (cron.startsWith('@')) {
    const macro = cron.toLowerCase();
    if (!MACROS.has(macro)) {
      throw new ScheduleSpecError(
        'cron',
        `unknown shorthand "${cron}" (use ${[...MACROS].join(', ')} or @every)`,
      );
    }
    return { kind: 'cron', expression: macro };
  }
  const fields = cron.split(' ');
  if (fields.length !== 5) {
    throw new ScheduleSpecError(
      'cron',
      `expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}; for seconds use "@every <n>s"`,
    );
  }
  const values = fields.map((f, i) => checkField(f, FIELDS[i]!));
  if (mustFire) checkSomeDate(fields[2]!, values[2]!, fields[3]!, values[3]!);
  return { kind: 'cron', expression: fields.join(' ') };
}

/** Longest month, by month number (February: 29, a leap year's). */
const MONTH_DAYS = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * A schedule that can never fire (`0 0 30 2 *`, `0 0 31 4,6,9,11 *`) is a mistake to say now, not a
 * schedule that silently never runs. Day-of-week cannot make it impossible: over 28 years every
 * date, 29 February too, falls on every day of the week.
 */
function checkSomeDate(dayField: string, days: Set<number>, monthField: string, months: Set<number>): void {
  const firstDay = Math.min(...days);
  if ([...months].some((m) => firstDay <= MONTH_DAYS[m]!)) return;
  throw new ScheduleSpecError(
    'cron',
    `day of month "${dayField}" never falls in month "${monthField}": the schedule would never fire`,
  );
}

function parseEvery(cron: string, minIntervalMs: number): number {
  const m = /^@every (\d{1,9})([smhd])$/.exec(cron);
  if (!m) throw new ScheduleSpecError('cron', 'expected "@every <n><s|m|h|d>", e.g. "@every 15m"');
  const everyMs = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (everyMs < minIntervalMs) {
    throw new ScheduleSpecError('cron', `the interval must be at least ${minIntervalMs / 1000} seconds`);
  }
  if (everyMs > EVERY_MAX_MS) throw new ScheduleSpecError('cron', 'the interval must be at most 366 days');
  return everyMs;
}

/**
 * Checks one field and answers the values it stands for (`a/n` runs from a to the field's end, as
 * in cron).
 */
function checkField(field: string, rule: FieldRule): Set<number> {
  const bad = (why: string): never => {
    throw new ScheduleSpecError('cron', `${rule.name} "${field}": ${why}`);
  };
  const values = new Set<number>();
  for (const part of field.split(',')) {
    if (part === '') bad('empty list item');
    const [range, step, extra] = part.split('/');
    if (extra !== undefined) bad('more than one "/"');
    if (step !== undefined && !/^\d{1,2}$/.test(step)) bad('a step must be a number');
    if (step !== undefined && Number(step) < 1) bad('a step must be at least 1');
    let from = rule.min;
    let to = rule.max;
    if (range !== '*') {
      const ends = range!.split('-');
      if (ends.length > 2) bad('a range is "a-b"');
      const [a, b] = ends.map((e) => value(e, rule, bad));
      from = a!;
      to = b ?? (step === undefined ? from : rule.max);
      if (to < from) bad('a range must not run backwards');
    }
    for (let v = from; v <= to; v += Number(step ?? 1)) values.add(v);
  }
  return values;
}

function value(s: string, rule: FieldRule, bad: (why: string) => never): number {
  if (/^\d{1,2}$/.test(s)) {
    const n = Number(s);
    if (n < rule.min || n > rule.max) bad(`${n} is outside ${rule.min}-${rule.max}`);
    return n;
  }
  const named = rule.names?.indexOf(s.toUpperCase()) ?? -1;
  if (named >= 0) return named + (rule.namesFrom ?? 0);
  return bad(rule.names ? `"${s}" is not a number or a ${rule.name} name` : `"${s}" is not a number`);
}

/**
 * Checks `timezone` (an IANA name: `UTC`, `Europe/Paris`, `US/Pacific`) and answers its canonical
 * spelling, which is what Temporal gets (its server resolves names case-sensitively from the tz
 * database). Fixed offsets such as `+01:00` are refused: they are not IANA names. So are the names
 * only ICU knows (`US/Pacific-New`, `SystemV/AST4`): Intl takes them, Temporal's server does not.
 */
export function parseTimezone(raw: string): string {
  const tz = raw.trim();
  if (tz.length === 0) throw new ScheduleSpecError('timezone', 'must not be empty');
  if (tz.length > TIMEZONE_MAX_CHARS || !/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(tz)) {
    throw new ScheduleSpecError('timezone', 'must be an IANA time zone name such as "Europe/Paris"');
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new ScheduleSpecError('timezone', `unknown time zone "${tz}"`);
  }
  // Intl matches names case-insensitively; Temporal's server does not: keep the tz database's
  // spelling. A name Intl lists beyond the pinned list is a zone newer than it (Temporal has the
  // last word on those: a refusal is a 400 too).
  const known = zoneNames().get(tz.toLowerCase());
  if (known === undefined) {
    throw new ScheduleSpecError(
      'timezone',
      `"${tz}" is not in the IANA time zone database (a legacy or non-IANA id); use e.g. "America/Los_Angeles"`,
    );
  }
  return known;
}

let zones: Map<string, string> | null = null;
/** Lower-cased name → canonical spelling, of the tz database's names and those Intl lists. */
const zoneNames = (): Map<string, string> =>
  (zones ??= new Map(
    [...TZDB_NAMES, ...Intl.supportedValuesOf('timeZone')].map((name) => [name.toLowerCase(), name]),
  ));

/** The Temporal ScheduleSpec of a stored (already checked) cron + timezone. */
export function temporalSpec(
  cron: string,
  timezone: string,
): { cronExpressions: string[]; timezone: string } | { intervals: Array<{ every: number }> } {
  // Stored values passed the checks in force when they were saved (an @every's floor, whether a
  // date must exist): those are not checked again.
  const parsed = parseCron(cron, 0, false);
  if (parsed.kind === 'every') return { intervals: [{ every: parsed.everyMs }] };
  return { cronExpressions: [parsed.expression], timezone };
}
