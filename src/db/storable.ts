/**
 * Text the platform did not validate (an agent's A2A traffic, a console's output, a backend's error
 * message) can hold what PostgreSQL refuses: NUL in text, an unpaired UTF-16 surrogate (not UTF-8).
 * A refused insert would lose the whole row (an activity entry, a kept boot log, a transition), so
 * such characters are replaced, never the row dropped.
 */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this replaces
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export const storable = <T extends string | null | undefined>(s: T): T =>
  typeof s === 'string' ? (s.replace(UNSTORABLE, '\uFFFD') as T) : s;
