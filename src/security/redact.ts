/**
 * The one redaction function: applied before anything reaches storage or an API answer (boot
 * logs, activity rows, errors), on both backends, so timing never differs between them.
 */
const TOKEN_PATTERN = /wo_(?:org|ws|boot)_[A-Za-z0-9_-]{8,}/g;

export function redact(text: string, secretValues: readonly string[] = []): string {
  let out = text.replace(TOKEN_PATTERN, '[REDACTED]');
  // Longest first so a secret that contains another is replaced whole.
  for (const value of [...secretValues].sort((a, b) => b.length - a.length)) {
    if (value.length >= 4) out = out.split(value).join('[REDACTED]');
  }
  return out;
}
