#!/usr/bin/env node
/**
 * `wsctl`: the workspace orchestrator's command line (docs/cli.md). Built to dist/cli/wsctl.js,
 * the package's `bin`; `npm run wsctl -- <args>` runs it from source.
 */
import { runWsctl } from './wsctl/program.js';

const code = await runWsctl(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
process.exitCode = code;
