/**
 * Node's arguments that run a TypeScript module in a child process: tsx's ESM loader alone. The
 * sources are ESM; the plain `tsx` import also hooks require() and looked at every CommonJS module
 * node_modules loads: 3.7 s of CPU to start a worker process, 3.0 s without it.
 */
export const TS_NODE_ARGS = ['--import', 'tsx/esm'] as const;
