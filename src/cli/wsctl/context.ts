/** Per-run context handed to every command: the resolved connection, client and output. */
import type { Command } from 'commander';
import { configPath, readConfigFile, resolveConnection, type Connection } from './config.js';
import { Client } from './http.js';
import { Output, type Io } from './output.js';

export interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  configFile?: string;
}

export interface Ctx {
  io: Io;
  out: Output;
  client: Client;
  connection: Connection;
  configFile: string;
}

export function contextOf(cmd: Command, io: Io): Ctx {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const file = configPath(io.env, g.configFile);
  const connection = resolveConnection({ url: g.url, token: g.token }, io.env, readConfigFile(file));
  return {
    io,
    out: new Output(io, g.json === true),
    client: new Client(connection.url, connection.token),
    connection,
    configFile: file,
  };
}
