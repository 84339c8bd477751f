import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, urlOf } from '../support/cli.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

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
