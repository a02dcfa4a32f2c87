/** `wsctl login`: checks a URL and token against the service, then saves them (mode 0600). */
import type { Command } from 'commander';
import { configPath, readConfigFile, validUrl, writeConfigFile } from '../config.js';
import { CliError, EXIT } from '../errors.js';
import type { GlobalOptions } from '../context.js';
import { Client } from '../http.js';
import { Output, type Io } from '../output.js';
import { readAll } from './parse.js';

export function loginCommands(program: Command, io: Io): void {
  program
    .command('login')
    .description('save the endpoint and token for later commands (token from --token, WO_TOKEN or stdin)')
    .option('--no-verify', 'save without checking the token against the service')
    .action(async (o: { verify: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const file = configPath(io.env, g.configFile);
      const current = readConfigFile(file);
      const url = validUrl(g.url ?? io.env.WO_URL ?? current.url ?? 'http://127.0.0.1:8080');
      let token = g.token ?? io.env.WO_TOKEN;
      if (!token && io.stdin.isTTY !== true) token = (await readAll(io.stdin)).toString('utf8').trim();
      if (!token) throw new CliError(EXIT.usage, 'no token: pass --token, set WO_TOKEN, or pipe it on stdin');
      if (o.verify) {
        // Any key may list workspaces (an org key its own, the admin every org's).
        const res = await new Client(url, token).send('GET', '/v1/workspaces', { query: { limit: 1 } });
        await res.body?.cancel();
      }
      writeConfigFile(file, { url, token });
      new Output(io, g.json === true).done(`logged in to ${url} (saved to ${file})`, {
        url,
        configFile: file,
      });
    });
}
