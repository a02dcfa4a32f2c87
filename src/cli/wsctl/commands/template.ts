/** `wsctl template lint`: the same command as `npm run template -- lint` (src/cli/template.ts). */
import type { Command } from 'commander';
import { templateProgram } from '../../template.js';
import type { Io } from '../output.js';

export function templateCommands(program: Command, io: Io): void {
  program.addCommand(
    templateProgram(
      (l) => io.stdout.write(l + '\n'),
      (l) => io.stderr.write(l + '\n'),
    ),
  );
}
