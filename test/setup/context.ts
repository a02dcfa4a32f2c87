// What global-setup.ts hands every test through vitest's provide()/inject(). The same values are
// also exported as environment variables for child processes the tests spawn.
declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of a fresh database created for this run. */
    DATABASE_URL: string;
    /** host:port of this run's Temporal dev server (namespace `default`, search attributes registered). */
    TEMPORAL_ADDRESS: string;
    TEMPORAL_NAMESPACE: string;
    /**
     * moto_server's URL (the EC2 API, in memory, fresh per run; any credentials and region). It
     * boots nothing: start test/ec2-sim's startEc2Sim() on it and point EC2 clients at the sim.
     */
    MOTO_ENDPOINT: string;
    /** Tag of the workspace runtime image, built (or found up to date) for this run. */
    RUNTIME_IMAGE: string;
  }
}

export {};
