import { randomBytes } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { sql } from 'kysely';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, urlOf } from '../support/cli.ts';
import { dialects, openTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../support/databases.ts';

const zoomArgs = ['accounts', 'zoom', 'add', '--label', 'host-1', '--plan', 'licensed', '--account-id', 'acc', '--client-id', 'cid', '--host-user-id', 'h1@example.com'];

describe.each(dialects)('the scheduler command on %s', (dialect) => {
  let dir: string;
  let database: TestDatabase;
  let env: Record<string, string>;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-cli-'));
    database = await openTestDatabase(dialect);
    env = { SCHEDULER__DATABASE__URL: urlOf(database, join(dir, 'cli.db')), SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64') };
  });
  afterEach(async () => {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrates idempotently', async () => {
    const first = await cli(['migrate'], env);
    expect(first.code).toBe(0);
    const second = await cli(['migrate'], env);
    expect(second.code).toBe(0);
    expect(second.out).toMatch(/up to date/);
  });

  it.runIf(dialect === 'postgres')('hides a password given as a query parameter in its output', async () => {
    const url = new URL(urlOf(database, ''));
    url.searchParams.set('password', 'hunter2');
    const migrated = await cli(['migrate'], { ...env, SCHEDULER__DATABASE__URL: url.toString() });
    expect(migrated.code).toBe(0);
    expect(migrated.out).toMatch(/up to date/);
    expect(migrated.out).not.toContain('hunter2');
  });

  it('manages Zoom hosts with exit codes scripts can use', async () => {
    const added = await cli([...zoomArgs, '--client-secret', '-', '--json'], env, 'secret-from-stdin\n');
    expect(added.code).toBe(0);
    expect(added.out).not.toContain('secret-from-stdin');
    const id = JSON.parse(added.out).id as number;

    const duplicate = await cli([...zoomArgs, '--client-secret', 'x'], env);
    expect(duplicate.code).toBe(4);
    expect(duplicate.err).toMatch(/already exists/);

    const badPlan = await cli(['accounts', 'zoom', 'add', '--label', 'h2', '--plan', 'pro', '--account-id', 'a', '--client-id', 'c', '--client-secret', 's', '--host-user-id', 'h2'], env);
    expect(badPlan.code).toBe(2);
    expect(badPlan.err).toMatch(/plan/);

    const disabled = await cli(['accounts', 'zoom', 'disable', String(id)], env);
    expect(disabled.code).toBe(0);
    const list = await cli(['accounts', 'zoom', 'list'], env);
    expect(list.out).toMatch(/host-1\s+licensed\s+acc\s+h1@example.com\s+no/);
    expect(list.out).not.toContain('secret-from-stdin');
    expect((await cli(['accounts', 'zoom', 'disable', '999'], env)).code).toBe(3);
    expect((await cli(['accounts', 'zoom', 'disable', 'abc'], env)).code).toBe(2);
  });

  it('manages LINE channels and reports status', async () => {
    const added = await cli(
      ['accounts', 'line', 'add', '--label', 'OA', '--slug', 'main', '--channel-id', '123', '--channel-secret', 'cs', '--channel-access-token', 'tok'],
      env,
    );
    expect(added.code).toBe(0);
    expect((await cli(['accounts', 'line', 'list', '--json'], env)).out).toContain('"slug":"main"');
    expect((await cli(['accounts', 'line', 'disable', '1'], env)).code).toBe(0);
    const status = await cli(['status', '--json'], env);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out)).toMatchObject({ lineChannels: { total: 1, enabled: 0 }, zoomAccounts: { total: 0 }, monitoring: { last24h: {}, webhookEvents: { pending: 0, failed: 0 }, recordings: {} } });
    const human = await cli(['status'], env);
    expect(human.out).toMatch(/LINE channels:\s+0 enabled of 1/);
    expect(human.out).toMatch(/Zoom webhooks:\s+0 waiting, 0 set aside/);
  });
});

describe('command-line usage', () => {
  it('prints help and exits 0; unknown commands and bad config exit 2', async () => {
    const help = await cli(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/accounts/);
    const subHelp = await cli(['accounts', 'zoom', 'add', '--help'], {});
    expect(subHelp.code).toBe(0);
    expect(subHelp.out).toMatch(/--client-secret/);
    expect((await cli(['frobnicate'], {})).code).toBe(2);
    const dir = mkdtempSync(join(tmpdir(), 'scheduler-cli-'));
    try {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, 'http:\n  port: -1\n');
      const bad = await cli(['status', '--config', file], {});
      expect(bad.code).toBe(2);
      expect(bad.err).toContain('http.port');
      const viaEnv = await cli(['migrate'], { SCHEDULER_CONFIG: file });
      expect(viaEnv.code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Tables in an SQLite file: none means nothing was migrated. */
function tablesIn(file: string): string[] {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    return db.prepare(`select name from sqlite_master where type = 'table'`).all().map((row) => String(row.name));
  } finally {
    db.close();
  }
}

/** A PNG whose header is sound but whose pixels are not: only decoding it shows the problem. */
function brokenPng(): Buffer {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'latin1');
  ihdr.writeUInt32BE(100, 8);
  ihdr.writeUInt32BE(50, 12);
  ihdr.set([8, 2, 0, 0, 0], 16);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr, Buffer.from('not pixels at all')]);
}

/** README: start-up with an invalid configuration (the secret key included) exits 2 and names it. */
describe('start-up refusals', () => {
  let dir: string;
  let dbFile: string;
  let env: Record<string, string>;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-cli-refuse-'));
    dbFile = join(dir, 's.db');
    env = { SCHEDULER__DATABASE__URL: `sqlite:${dbFile}`, SCHEDULER__HTTP__PORT: '0', SCHEDULER__LOG__LEVEL: 'silent', SCHEDULER__RECORDINGS__DIR: join(dir, 'rec') };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 2 naming imagemap.source when it is not an image', async () => {
    const notImage = join(dir, 'logo.png');
    writeFileSync(notImage, 'this is not an image');
    const result = await cli(['start'], { ...env, SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64'), SCHEDULER__IMAGEMAP__SOURCE: notImage });
    expect(result.err).toContain('imagemap.source');
    expect(result.code).toBe(2);
  });

  it('exits 2 naming imagemap.source when it looks like an image but does not decode', async () => {
    const broken = join(dir, 'logo.png');
    writeFileSync(broken, brokenPng());
    const result = await cli(['start'], { ...env, SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64'), SCHEDULER__IMAGEMAP__SOURCE: broken });
    expect(result.err).toContain('imagemap.source');
    expect(result.code).toBe(2);
  }, 15_000);

  it.each([['start'], ['status']])('`%s` exits 2 naming a malformed SCHEDULER_SECRET_KEY, and migrates nothing', async (command) => {
    const result = await cli([command], { ...env, SCHEDULER_SECRET_KEY: 'abc' });
    expect(result.err).toMatch(/SCHEDULER_SECRET_KEY/);
    expect(result.code).toBe(2);
    expect(tablesIn(dbFile)).toEqual([]);
  });

  it.runIf(TEST_DATABASE_URL)('exits 2 without SCHEDULER_SECRET_KEY on PostgreSQL, and migrates nothing', async () => {
    const database = await openTestDatabase('postgres');
    try {
      // Without the migrations' record the schema counts as never migrated: a migration would recreate it.
      await database.db.schema.dropTable('kysely_migration').execute();
      await database.db.schema.dropTable('kysely_migration_lock').execute();
      const url = urlOf(database, '');
      for (const command of ['start', 'status']) {
        const result = await cli([command], { ...env, SCHEDULER__DATABASE__URL: url });
        expect(result.err).toContain('SCHEDULER_SECRET_KEY is required');
        expect(result.code).toBe(2);
      }
      const record = await sql<{ n: number }>`select count(*)::int as n from information_schema.tables where table_schema = ${database.schema} and table_name like 'kysely_migration%'`.execute(database.db);
      expect(record.rows[0]?.n).toBe(0);
    } finally {
      await database.close();
    }
  });
});
