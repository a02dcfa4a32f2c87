/** The `wsctl` command tree, and running it with exit codes (the entry point is src/cli/wsctl.ts). */
import { Command, CommanderError } from 'commander';
import { a2aCommands } from './commands/a2a.js';
import { orgCommands, sweepCommands } from './commands/admin.js';
import { pluginCommands, scheduleCommands, secretCommands } from './commands/extras.js';
import { fileCommands } from './commands/files.js';
import { loginCommands } from './commands/login.js';
import { templateCommands } from './commands/template.js';
import { workspaceCommands } from './commands/workspaces.js';
import { CliError, EXIT, oneLine } from './errors.js';
import { printable, type Io } from './output.js';
import { terminalCommand } from './terminal.js';

export function wsctlProgram(io: Io): Command {
  const program = new Command('wsctl')
    .description('command line for the workspace orchestrator')
    .option('--url <url>', 'service URL (env WO_URL, else the saved login, else http://127.0.0.1:8080)')
    .option(
      '--token <token>',
      'API token: an org key or the admin token (env WO_TOKEN, else the saved login)',
    )
    .option('--json', 'machine-readable output: one JSON document on stdout')
    .option('--config-file <file>', 'config file (default $XDG_CONFIG_HOME/wsctl/config.json)')
    .showHelpAfterError(false);
  loginCommands(program, io);
  orgCommands(program, io);
  const ws = program.command('ws').description('workspaces');
  workspaceCommands(ws, io);
  terminalCommand(ws, io);
  fileCommands(ws, io);
  a2aCommands(ws, io);
  pluginCommands(ws, io);
  secretCommands(ws, io);
  scheduleCommands(ws, io);
  templateCommands(program, io);
  sweepCommands(program, io);

  // Usage errors exit 2 (not commander's 1), and nothing calls process.exit behind our back.
  const apply = (c: Command) => {
    c.exitOverride();
    c.configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
    c.commands.forEach(apply);
  };
  apply(program);
  return program;
}

/** Runs one command line; the exit code (errors are one line on stderr, prefixed `wsctl: `). */
export async function runWsctl(argv: readonly string[], io: Io): Promise<number> {
  const program = wsctlProgram(io);
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; commander has already printed its one-line error.
      if (err.exitCode === 0) return EXIT.ok;
      return err.code === 'commander.executeSubCommandAsync' ? EXIT.generic : EXIT.usage;
    }
    if (err instanceof CliError) {
      io.stderr.write(`wsctl: ${printable(err.message)}\n`);
      return err.exitCode;
    }
    io.stderr.write(`wsctl: ${printable(oneLine((err as Error)?.message ?? String(err)))}\n`);
    return EXIT.generic;
  }
}
