import { Command, CommanderError } from 'commander';
import { collectStatus } from '../status.ts';
import { capacityReport } from '../zoom/capacity.ts';
import { openDatabase } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { redactUrl } from '../config/store.ts';
import { registerAccountCommands } from './accounts.ts';
import { CliError, EXIT, exitCodeFor, openForCommand, readConfig, type CliIo, type GlobalOptions } from './context.ts';
import { startService } from './start.ts';

/** Runs the `scheduler` command line; resolves with the process exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: number = EXIT.ok;
  const run = async (fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (error) {
      const { code, message } = exitCodeFor(error);
      io.err(`error: ${message}`);
      exitCode = code;
    }
  };

  const program = new Command('scheduler')
    .description('Provisions Zoom meetings for classes and pushes their links to students on LINE.')
    .option('-c, --config <file>', 'YAML configuration file (default: $SCHEDULER_CONFIG, else built-in defaults)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError();
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  program
    .command('start')
    .description('run the service (admin API, webhooks, workers) until SIGTERM/SIGINT; SIGHUP reloads the config')
    .action(() =>
      run(async () => {
        exitCode = await startService(globals(), io);
      }),
    );

  program
    .command('migrate')
    .description('apply pending database migrations (start does this too)')
    .action(() =>
      run(async () => {
        const { config } = readConfig(globals(), io);
        const database = await openDatabase(config.database.url, { poolSize: 1 });
        try {
          const report = await migrate(database.db, database.dialect);
          io.out(
            report.applied.length
              ? `applied ${report.applied.join(', ')} to ${redactUrl(config.database.url)}`
              : `${redactUrl(config.database.url)} is up to date (${report.alreadyApplied} migrations)`,
          );
        } finally {
          await database.close();
        }
      }),
    );

  registerAccountCommands(program, io, run);

  program
    .command('status')
    .description('counts of accounts, schedules, meetings and deliveries by state')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      run(async () => {
        const ctx = await openForCommand(globals(), io);
        try {
          const status = await collectStatus(ctx.database.db, ctx.clock.now());
          if (opts.json) {
            io.out(JSON.stringify(status));
            return;
          }
          io.out(`Zoom hosts:     ${status.zoomAccounts.enabled} enabled of ${status.zoomAccounts.total}`);
          io.out(`LINE channels:  ${status.lineChannels.enabled} enabled of ${status.lineChannels.total}`);
          io.out(`members:        ${formatCounts(status.members)}`);
          io.out(`upcoming:       ${status.schedules.upcoming} schedules (${status.schedules.cancelled} cancelled); meetings ${formatCounts(status.schedules.meetings)}`);
          io.out(`appointments:   ${status.appointments.booked} booked, ${status.appointments.cancelled} cancelled`);
          io.out(`deliveries:     ${formatCounts(status.deliveries)}`);
          io.out(`last 24 h:      attendance ${formatCounts(status.monitoring.last24h)}`);
          io.out(`Zoom webhooks:  ${status.monitoring.webhookEvents.pending} waiting, ${status.monitoring.webhookEvents.failed} set aside`);
          io.out(`recordings:     ${formatCounts(status.monitoring.recordings)}`);
        } finally {
          await ctx.close();
        }
      }),
    );

  program
    .command('capacity')
    .description('concurrent classes vs Zoom hosts and the daily create budget for the coming days, with the shortfalls')
    .option('--days <n>', 'how many days ahead', '7')
    .option('--json', 'print JSON')
    .action((opts: { days: string; json?: boolean }) =>
      run(async () => {
        const days = Number(opts.days);
        if (!Number.isInteger(days) || days < 1 || days > 60) throw new CliError('--days must be a whole number from 1 to 60', EXIT.usage);
        const { config } = readConfig(globals(), io);
        const ctx = await openForCommand(globals(), io);
        try {
          const zoom = config.zoom;
          const report = await capacityReport(ctx.database.db, { ...zoom.meeting, basic: zoom.basic }, { from: ctx.clock.now(), days, horizonMs: zoom.provisioning.horizon.ms, hostWriteCap: zoom.quota.hostMeetingWrites });
          if (opts.json) {
            io.out(JSON.stringify(report));
            return;
          }
          const local = (iso: string) => new Intl.DateTimeFormat('en-GB', { timeZone: config.timezone, weekday: 'short', hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
          io.out(`hosts: ${report.hosts.licensed} licensed, ${report.hosts.basic} basic; times in ${config.timezone}`);
          for (const h of report.refused) io.out(`  left out: ${h.label} (${h.plan}) ${h.reason}${h.since ? ` since ${local(h.since)}` : ''}`);
          for (const d of report.days) {
            io.out(`${d.day}  ${String(d.classes).padStart(5)} classes  peak ${d.peakConcurrent}${d.peakAt ? ` at ${local(d.peakAt)}` : ''}  writes ${d.writes}/${d.createBudget} (${d.creates} creates, ${d.closes} closes)${d.writes > d.createBudget ? '  OVER BUDGET' : ''}`);
            for (const f of d.shortfalls) io.out(`    ${local(f.from)}–${local(f.to)}: ${f.classes} classes, ${f.hosts} hosts: ${f.missing} more needed`);
          }
        } finally {
          await ctx.close();
        }
      }),
    );

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors with 1, which we report as 2.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const { code, message } = exitCodeFor(error);
    io.err(`error: ${message}`);
    return code;
  }
  return exitCode;
}

function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length ? entries.map(([k, v]) => `${v} ${k}`).join(', ') : 'none';
}
