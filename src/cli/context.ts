import { systemClock, type Clock } from '../clock.ts';
import { ConfigError, configFileFrom, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { openDatabase, type Database } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { DomainError } from '../errors.ts';
import { loadSecretKeyBeforeMigrating, verifySecretKey } from '../secrets/key.ts';
import { SecretKeyError, type SecretBox } from '../secrets/secret-box.ts';

/** Exit statuses scripts can rely on. */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, conflict: 4 } as const;

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export interface GlobalOptions {
  config?: string;
}

export interface CliIo {
  env: Record<string, string | undefined>;
  out(line: string): void;
  err(line: string): void;
  readStdin(): Promise<string>;
}

export function readConfig(options: GlobalOptions, io: CliIo): { config: Config; file: string | undefined } {
  const file = configFileFrom(options.config, io.env);
  try {
    return { config: loadConfig({ ...(file ? { file } : {}), env: io.env }), file };
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
}

export interface DbContext {
  database: Database;
  box: SecretBox;
  clock: Clock;
  close(): Promise<void>;
}

/** Opens the configured database for a one-shot command (migrating it first, like `start`). */
export async function openForCommand(options: GlobalOptions, io: CliIo): Promise<DbContext> {
  const { config } = readConfig(options, io);
  const database = await openDatabase(config.database.url, { poolSize: 2 });
  try {
    // The key first, as at `start`: a command refused for a bad key migrates nothing.
    const key = await loadSecretKeyBeforeMigrating(database, io.env);
    await migrate(database.db, database.dialect);
    const box = await verifySecretKey(database.db, key.key);
    return { database, box, clock: systemClock(), close: () => database.close() };
  } catch (error) {
    await database.close();
    // A missing, malformed or wrong key is configuration (exit 2), as it is for `start`.
    if (error instanceof SecretKeyError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
}

/** Maps what a command threw to a message and an exit status. */
export function exitCodeFor(error: unknown): { code: number; message: string } {
  if (error instanceof CliError) return { code: error.exitCode, message: error.message };
  if (error instanceof DomainError) {
    const code = error.kind === 'not_found' ? EXIT.notFound : error.kind === 'conflict' ? EXIT.conflict : EXIT.usage;
    return { code, message: error.message };
  }
  if (error instanceof ConfigError) return { code: EXIT.usage, message: error.message };
  return { code: EXIT.failure, message: error instanceof Error ? error.message : String(error) };
}
