import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkStoredSecretKey, loadSecretKey, verifySecretKey } from '../../src/secrets/key.ts';
import { openDatabase } from '../../src/db/database.ts';
import { createSecretBox, parseSecretKey, SecretKeyError } from '../../src/secrets/secret-box.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

describe('secret box (AES-256-GCM)', () => {
  const box = createSecretBox(randomBytes(32));

  it('round-trips and never stores the plain text', () => {
    const sealed = box.encrypt('client-secret-123', 'zoom_accounts.client_secret');
    expect(sealed).not.toContain('client-secret-123');
    expect(box.decrypt(sealed, 'zoom_accounts.client_secret')).toBe('client-secret-123');
    expect(box.encrypt('same', 'p')).not.toBe(box.encrypt('same', 'p'));
  });

  it('refuses a ciphertext moved to another purpose, a tampered one, and another key', () => {
    const sealed = box.encrypt('token', 'line_channels.channel_access_token');
    expect(() => box.decrypt(sealed, 'line_channels.channel_secret')).toThrow(SecretKeyError);
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3] ?? '', 'base64url');
    body[0] = (body[0] ?? 0) ^ 1;
    expect(() => box.decrypt([...parts.slice(0, 3), body.toString('base64url')].join('.'), 'line_channels.channel_access_token')).toThrow(SecretKeyError);
    expect(() => createSecretBox(randomBytes(32)).decrypt(sealed, 'line_channels.channel_access_token')).toThrow(/wrong SCHEDULER_SECRET_KEY/);
  });

  it('accepts only a base64 key of 32 bytes', () => {
    expect(parseSecretKey(randomBytes(32).toString('base64'))).toHaveLength(32);
    expect(() => parseSecretKey(randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
  });
});

describe('where the key comes from', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('prefers SCHEDULER_SECRET_KEY', () => {
    const key = randomBytes(32);
    expect(loadSecretKey({ env: { SCHEDULER_SECRET_KEY: key.toString('base64') }, dialect: 'postgres' }).key.equals(key)).toBe(true);
  });

  it('generates a private key file beside the SQLite database on first run, and reuses it', () => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-key-'));
    const sqlitePath = join(dir, 'scheduler.db');
    const first = loadSecretKey({ env: {}, dialect: 'sqlite', sqlitePath });
    expect(first.origin).toEqual({ generatedFile: join(dir, 'secret.key') });
    expect(statSync(join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
    const second = loadSecretKey({ env: {}, dialect: 'sqlite', sqlitePath });
    expect(second.key.equals(first.key)).toBe(true);
    expect(second.origin).toEqual({ file: join(dir, 'secret.key') });
    expect(readFileSync(join(dir, 'secret.key'), 'utf8').trim()).toBe(first.key.toString('base64'));
  });

  it('requires the key with PostgreSQL, where replicas must share it', () => {
    expect(() => loadSecretKey({ env: {}, dialect: 'postgres' })).toThrow(/SCHEDULER_SECRET_KEY is required/);
    expect(existsSync(join(process.cwd(), 'secret.key'))).toBe(false);
  });
});

describe.each(dialects)('key check stored in the database on %s', (dialect) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.close();
    database = undefined;
  });

  it('accepts the same key again and refuses a different one at start', async () => {
    database = await openTestDatabase(dialect);
    const key = randomBytes(32);
    await verifySecretKey(database.db, key);
    await expect(verifySecretKey(database.db, key)).resolves.toBeDefined();
    await expect(verifySecretKey(database.db, randomBytes(32))).rejects.toThrow(/does not match/);
  });

  it('can refuse a different key before migrating, and has nothing to check in a database never migrated', async () => {
    database = await openTestDatabase(dialect);
    const key = randomBytes(32);
    await expect(checkStoredSecretKey(database.db, key)).resolves.toBeUndefined();
    await verifySecretKey(database.db, key);
    await expect(checkStoredSecretKey(database.db, key)).resolves.toBeUndefined();
    await expect(checkStoredSecretKey(database.db, randomBytes(32))).rejects.toThrow(SecretKeyError);
    const fresh = await openDatabase('sqlite::memory:');
    try {
      await expect(checkStoredSecretKey(fresh.db, randomBytes(32))).resolves.toBeUndefined();
    } finally {
      await fresh.close();
    }
  });
});

describe('a key file that is not a key', () => {
  it('is refused naming the file and SCHEDULER_SECRET_KEY', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scheduler-key-'));
    try {
      writeFileSync(join(dir, 'secret.key'), 'abc\n');
      expect(() => loadSecretKey({ env: {}, dialect: 'sqlite', sqlitePath: join(dir, 'scheduler.db') })).toThrow(SecretKeyError);
      expect(() => loadSecretKey({ env: {}, dialect: 'sqlite', sqlitePath: join(dir, 'scheduler.db') })).toThrow(/secret\.key does not hold a valid key.+SCHEDULER_SECRET_KEY/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
