/**
 * Caps of the data plane (files, boot logs, event streams): every buffer, listing, log and stream
 * the API serves is bounded. Set from the environment (src/config.ts); tests lower them.
 */
export interface Bounds {
  /** Largest file a read serves (413 `file_too_large` above, decided before any byte is sent). */
  fileReadMaxBytes: number;
  /** Most entries a listing returns (`truncated: true` when more exist). */
  fileListMaxEntries: number;
  /** Last bytes of console output a boot log serves (and a failed generation keeps). */
  bootLogConsoleMaxBytes: number;
  /** Most recent boot events a boot log serves. */
  bootLogMaxEvents: number;
  /** Concurrent `/events` streams per process. */
  eventStreamsMax: number;
  /** Concurrent `/events` streams per principal (API key, admin). */
  eventStreamsPerPrincipal: number;
  /** Interval of the one shared poll of transitions feeding every `/events` stream. */
  eventsPollMs: number;
  /**
   * File uploads held whole in memory at once per process (a body with no declared length, or
   * compressed: up to 10 MiB each); past it 429 `too_many_uploads`. Declared-length uploads are
   * streamed and not counted.
   */
  bufferedUploadsMax: number;
  /** The same per principal (API key, admin). */
  bufferedUploadsPerPrincipal: number;
}

export const DEFAULT_BOUNDS: Bounds = {
  fileReadMaxBytes: 100 * 1024 * 1024,
  fileListMaxEntries: 5000,
  bootLogConsoleMaxBytes: 256 * 1024,
  bootLogMaxEvents: 1000,
  eventStreamsMax: 1000,
  eventStreamsPerPrincipal: 20,
  eventsPollMs: 250,
  bufferedUploadsMax: 16,
  bufferedUploadsPerPrincipal: 4,
};

export function boundsOf(settings: { bounds?: Partial<Bounds> }): Bounds {
  return { ...DEFAULT_BOUNDS, ...settings.bounds };
}
