import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Database, Db } from '../db/database.ts';
import { createSecretBox, parseSecretKey, SecretKeyError, type SecretBox } from './secret-box.ts';

export interface KeySource {
  env: Record<string, string | undefined>;
  /** The SQLite file; a generated key file lives beside it. Absent for PostgreSQL and :memory:. */
  sqlitePath?: string;
  dialect: 'sqlite' | 'postgres';
}

export interface LoadedKey {
  key: Buffer;
  /** Where it came from, for the start-up log (never the key itself). */
  origin: 'environment' | { generatedFile: string } | { file: string } | 'ephemeral';
}

/**
 * SCHEDULER_SECRET_KEY wins. Without it, an embedded SQLite deployment gets a key file beside its
 * database (created on first run, mode 0600). PostgreSQL means several replicas that must share one
 * key, so there a missing key is an error rather than a per-machine file.
 */
export function loadSecretKey(source: KeySource): LoadedKey {
  const fromEnv = source.env.SCHEDULER_SECRET_KEY;
  if (fromEnv) return { key: parseSecretKey(fromEnv), origin: 'environment' };
  if (source.dialect === 'postgres') {
    throw new SecretKeyError('SCHEDULER_SECRET_KEY is required with PostgreSQL (every replica needs the same key); generate one with: openssl rand -base64 32');
  }
  if (!source.sqlitePath) return { key: randomBytes(32), origin: 'ephemeral' };
  const file = join(dirname(source.sqlitePath), 'secret.key');
  if (existsSync(file)) return { key: keyFromFile(file), origin: { file } };
  const key = randomBytes(32);
  writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return { key, origin: { generatedFile: file } };
}

function keyFromFile(file: string): Buffer {
  try {
    return parseSecretKey(readFileSync(file, 'utf8'));
  } catch (error) {
    // parseSecretKey's message names the variable; this key came from a file, so name that too.
    if (error instanceof SecretKeyError) throw new SecretKeyError(`${file} does not hold a valid key (base64 of exactly 32 bytes): restore it from the backup, or set SCHEDULER_SECRET_KEY`);
    throw error;
  }
}

const CHECK_KEY = 'secret_key_check';
const CHECK_PURPOSE = 'meta.secret_key_check';
const CHECK_TEXT = 'scheduler secret key check';

/**
 * Stores a sealed known value on first run and checks it on every start, so a wrong key is a clear
 * start-up error instead of a failed decrypt at 19:50.
 */
export async function verifySecretKey(db: Db, key: Buffer): Promise<SecretBox> {
  const box = createSecretBox(key);
  const row = await db.selectFrom('meta').select('value').where('key', '=', CHECK_KEY).executeTakeFirst();
  if (!row) {
    await db
      .insertInto('meta')
      .values({ key: CHECK_KEY, value: box.encrypt(CHECK_TEXT, CHECK_PURPOSE) })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return verifySecretKeyOnce(db, box);
  }
  return verifySecretKeyOnce(db, box, row.value);
}

/**
 * The key for this database (`loadSecretKey`), checked before migrating, as `start` and every CLI
 * command do: one refused for a missing, malformed or wrong key (a SecretKeyError) leaves the
 * database as it was.
 */
export async function loadSecretKeyBeforeMigrating(database: Database, env: Record<string, string | undefined>): Promise<LoadedKey> {
  const key = loadSecretKey({ env, dialect: database.dialect, ...(database.sqlitePath ? { sqlitePath: database.sqlitePath } : {}) });
  await checkStoredSecretKey(database.db, key.key);
  return key;
}

/**
 * Before migrating: a wrong key is refused while the database is still as it was. Only a database
 * that already holds the check value can tell; a new one (no `meta` table yet) has nothing to check,
 * and `verifySecretKey` stores the value after migrating.
 */
export async function checkStoredSecretKey(db: Db, key: Buffer): Promise<void> {
  let stored: string | undefined;
  try {
    stored = (await db.selectFrom('meta').select('value').where('key', '=', CHECK_KEY).executeTakeFirst())?.value;
  } catch {
    // No `meta` table: never migrated, so nothing was encrypted. A dead database fails the migration next.
    return;
  }
  if (stored !== undefined) await verifySecretKeyOnce(db, createSecretBox(key), stored);
}

async function verifySecretKeyOnce(db: Db, box: SecretBox, stored?: string): Promise<SecretBox> {
  const value = stored ?? (await db.selectFrom('meta').select('value').where('key', '=', CHECK_KEY).executeTakeFirstOrThrow()).value;
  let plain: string;
  try {
    plain = box.decrypt(value, CHECK_PURPOSE);
  } catch {
    throw new SecretKeyError('the secret key does not match the one this database was encrypted with (check SCHEDULER_SECRET_KEY or the key file)');
  }
  if (plain !== CHECK_TEXT) throw new SecretKeyError('secret key check value is corrupt');
  return box;
}
