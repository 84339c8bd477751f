import { runCli } from '../../src/cli/program.ts';
import type { TestDatabase } from './databases.ts';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs the real command line in-process with captured output. */
export async function cli(argv: string[], env: Record<string, string | undefined>, stdin = ''): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { env, out: (l) => out.push(l), err: (l) => err.push(l), readStdin: async () => stdin });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A database URL that reaches the test database (its own schema on PostgreSQL). */
export function urlOf(database: TestDatabase, sqliteFile: string): string {
  if (database.dialect === 'sqlite') return `sqlite:${sqliteFile}`;
  const url = new URL(database.url);
  url.searchParams.set('options', `-c search_path=${database.schema ?? 'public'}`);
  return url.toString();
}
