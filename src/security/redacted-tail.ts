/**
 * Console output as it is kept or served: secrets redacted first, then capped to its last bytes.
 * In that order a `[REDACTED]` marker never pushes the text over the cap, and the cap never turns
 * a secret into a fragment that redaction no longer recognises.
 */
import { tailText } from '../backends/streams.js';
import { redact } from './redact.js';

export const REDACTED = '[REDACTED]';

export interface RedactedTail {
  text: string;
  /** Whether older output was dropped (here or by whoever read the console before). */
  truncated: boolean;
}

/** Extra bytes to ask a backend for beyond the cap, so that a console longer than the cap shows. */
export const CONSOLE_FETCH_SLACK_BYTES = 4096;

/**
 * `raw` redacted and cut to its last `maxBytes` UTF-8 bytes. `alreadyCut`: older output was
 * dropped before (a kept copy that was capped). Raw console text may itself be the tail of a
 * longer one (a backend's cap, EC2's 64 KB), so it may begin with the end of a secret: that end is
 * redacted too (it is secret material whatever cut it).
 */
export function redactedTail(
  raw: string,
  secrets: readonly string[],
  maxBytes: number,
  alreadyCut = false,
): RedactedTail {
  const truncated = alreadyCut || Buffer.byteLength(raw, 'utf8') > maxBytes;
  const fragment = leadingSecretFragment(raw, secrets);
  const text = fragment > 0 ? REDACTED + raw.slice(fragment) : raw;
  return { text: tailText(redact(text, secrets), maxBytes), truncated };
}

/**
 * Length of the longest proper end of a secret (4 characters or more, redaction's own minimum)
 * that `text` begins with; 0 when none.
 */
export function leadingSecretFragment(text: string, secrets: readonly string[]): number {
  const head = text.slice(0, 4);
  if (head.length < 4) return 0;
  let longest = 0;
  for (const s of secrets) {
    // Starting at 1: a whole secret at the start is redact()'s job. The first match is the longest.
    for (let i = s.indexOf(head, 1); i !== -1 && s.length - i > longest; i = s.indexOf(head, i + 1)) {
      if (text.startsWith(s.slice(i))) {
        longest = s.length - i;
        break;
      }
    }
  }
  return longest;
}
