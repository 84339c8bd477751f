import type { Command } from 'commander';
import type { z } from 'zod';
import { insertLineChannel, listLineChannels, updateLineChannel } from '../line/channels.ts';
import { insertZoomAccount, listZoomAccounts, updateZoomAccount } from '../zoom/accounts.ts';
import { formatIssues } from '../config/load.ts';
import { lineChannelCreate, zoomAccountCreate } from '../http/schemas.ts';
import { CliError, EXIT, openForCommand, type CliIo, type DbContext, type GlobalOptions } from './context.ts';

/** `scheduler accounts zoom|line add|list|enable|disable`: the same rules as the admin API. */
export function registerAccountCommands(program: Command, io: CliIo, run: (fn: () => Promise<void>) => Promise<void>): void {
  const accounts = program.command('accounts').description('manage the Zoom host pool and the LINE channel pool');
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const secretArg = secretReader(io);
  const withDb = (fn: (ctx: DbContext) => Promise<void>) =>
    run(async () => {
      const ctx = await openForCommand(globals(), io);
      try {
        await fn(ctx);
      } finally {
        await ctx.close();
      }
    });

  const zoom = accounts.command('zoom').description('Zoom host accounts (one entry per host user)');
  zoom
    .command('add')
    .description('add a host to the pool (a secret given as "-" is read from standard input)')
    .requiredOption('--label <label>', 'a name for this host')
    .requiredOption('--plan <plan>', 'licensed or basic (basic hosts only take classes of 40 minutes or less)')
    .requiredOption('--account-id <id>', 'Zoom account id of the Server-to-Server OAuth app')
    .requiredOption('--client-id <id>', 'S2S OAuth client id')
    .requiredOption('--client-secret <secret>', 'S2S OAuth client secret, or - to read it from stdin')
    .requiredOption('--host-user-id <id>', 'Zoom user id or email of the host')
    .option('--webhook-secret-token <token>', "the app's webhook secret token, or - to read it from stdin")
    .option('--json', 'print the result as JSON')
    .action((opts: Record<string, string | boolean | undefined>) =>
      withDb(async ({ database, box, clock }) => {
        const input = parse(zoomAccountCreate, {
          label: opts.label,
          plan: opts.plan,
          accountId: opts.accountId,
          clientId: opts.clientId,
          clientSecret: await secretArg(opts.clientSecret),
          hostUserId: opts.hostUserId,
          ...(opts.webhookSecretToken ? { webhookSecretToken: await secretArg(opts.webhookSecretToken) } : {}),
        });
        const account = await insertZoomAccount(database.db, box, clock, input);
        io.out(opts.json ? JSON.stringify(account) : `added Zoom account ${account.id} (${account.label})`);
      }),
    );
  zoom
    .command('list')
    .description('list the pool (secrets are never shown)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withDb(async ({ database }) => {
        const rows = await listZoomAccounts(database.db);
        if (opts.json) io.out(JSON.stringify(rows));
        else table(io, ['id', 'label', 'plan', 'account', 'host', 'enabled', 'refused by Zoom'], rows.map((a) => [a.id, a.label, a.plan, a.accountId, a.hostUserId, a.enabled ? 'yes' : 'no', a.refusedReason ?? '']));
      }),
    );
  for (const enabled of [false, true]) {
    zoom
      .command(enabled ? 'enable' : 'disable')
      .description(enabled ? 'put a host back into the pool' : 'take a host out of the pool (its history stays)')
      .argument('<id>', 'the id shown by list')
      .action((id: string) =>
        withDb(async ({ database, box, clock }) => {
          const account = await updateZoomAccount(database.db, box, clock, numericId(id), { enabled });
          io.out(`Zoom account ${account.id} (${account.label}) ${enabled ? 'enabled' : 'disabled'}`);
        }),
      );
  }

  const line = accounts.command('line').description('LINE channels (Messaging API channels)');
  line
    .command('add')
    .description('add a channel to the pool (a secret given as "-" is read from standard input)')
    .requiredOption('--label <label>', 'a name for this channel')
    .requiredOption('--slug <slug>', 'webhook subdomain: <slug>.<line.webhookDomain>')
    .requiredOption('--channel-id <id>', 'numeric LINE channel id')
    .requiredOption('--channel-secret <secret>', 'channel secret, or - to read it from stdin')
    .requiredOption('--channel-access-token <token>', 'long-lived channel access token, or - to read it from stdin')
    .option('--bot-user-id <id>', 'the bot user id (the webhook "destination")')
    .option('--json', 'print the result as JSON')
    .action((opts: Record<string, string | boolean | undefined>) =>
      withDb(async ({ database, box, clock }) => {
        const input = parse(lineChannelCreate, {
          label: opts.label,
          slug: opts.slug,
          channelId: opts.channelId,
          channelSecret: await secretArg(opts.channelSecret),
          channelAccessToken: await secretArg(opts.channelAccessToken),
          ...(opts.botUserId ? { botUserId: opts.botUserId } : {}),
        });
        const channel = await insertLineChannel(database.db, box, clock, input);
        io.out(opts.json ? JSON.stringify(channel) : `added LINE channel ${channel.id} (${channel.label}, slug ${channel.slug})`);
      }),
    );
  line
    .command('list')
    .description('list the channels (secrets are never shown)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withDb(async ({ database }) => {
        const rows = await listLineChannels(database.db);
        if (opts.json) io.out(JSON.stringify(rows));
        else table(io, ['id', 'label', 'slug', 'channel', 'enabled'], rows.map((c) => [c.id, c.label, c.slug, c.channelId, c.enabled ? 'yes' : 'no']));
      }),
    );
  for (const enabled of [false, true]) {
    line
      .command(enabled ? 'enable' : 'disable')
      .description(enabled ? 'put a channel back into use' : 'stop using a channel (members and history stay)')
      .argument('<id>', 'the id shown by list')
      .action((id: string) =>
        withDb(async ({ database, box, clock }) => {
          const channel = await updateLineChannel(database.db, box, clock, numericId(id), { enabled });
          io.out(`LINE channel ${channel.id} (${channel.label}) ${enabled ? 'enabled' : 'disabled'}`);
        }),
      );
  }
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new CliError(formatIssues(result.error).join('; '), EXIT.usage);
  return result.data;
}

/** A secret argument; "-" reads it from standard input (once per command), keeping it out of shell history. */
function secretReader(io: CliIo): (value: string | boolean | undefined) => Promise<string | undefined> {
  let stdinUsed = false;
  return async (value) => {
    if (value !== '-') return typeof value === 'string' ? value : undefined;
    if (stdinUsed) throw new CliError('only one secret can be read from standard input', EXIT.usage);
    stdinUsed = true;
    return (await io.readStdin()).split(/\r?\n/)[0]?.trim();
  };
}

function numericId(id: string): number {
  if (!/^\d+$/.test(id)) throw new CliError(`"${id}" is not an id (a positive number)`, EXIT.usage);
  return Number(id);
}

function table(io: CliIo, header: string[], rows: (string | number)[][]): void {
  const all = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  for (const row of all) io.out(row.map((cell, i) => String(cell).padEnd(widths[i] ?? 0)).join('  ').trimEnd());
  if (rows.length === 0) io.out('(none)');
}
