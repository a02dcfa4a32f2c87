// What global-setup.ts hands every test through vitest's provide()/inject(). The same values are
// also exported as environment variables for child processes the tests spawn.
declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of a fresh database created for this run. */
    DATABASE_URL: string;
    /** host:port of this run's Temporal dev server (namespace `default`, search attributes registered). */
    TEMPORAL_ADDRESS: string;
    TEMPORAL_NAMESPACE: string;
    /** Tag of the workspace runtime image, built (or found up to date) for this run. */
    RUNTIME_IMAGE: string;
  }
}

export {};
