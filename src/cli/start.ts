import { createApp, StartupError } from '../app.ts';
import { systemClock } from '../clock.ts';
import { createConfigStore } from '../config/store.ts';
import { createLogger } from '../logger.ts';
import { CliError, EXIT, readConfig, type CliIo, type GlobalOptions } from './context.ts';

/**
 * Runs the service until SIGTERM/SIGINT. SIGHUP (and, if enabled, a change to the file) reloads the
 * configuration. Resolves with the exit status once everything is stopped.
 */
export async function startService(options: GlobalOptions, io: CliIo): Promise<number> {
  const { config, file } = readConfig(options, io);
  const logger = createLogger({ level: config.log.level });
  const clock = systemClock();
  const store = createConfigStore(config, { ...(file ? { file } : {}), env: io.env }, clock);

  let app;
  try {
    app = await createApp({ config: store, env: io.env, clock, logger });
  } catch (error) {
    if (error instanceof StartupError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
  const address = await app.listen();
  logger.info({ address, config: file ?? '(defaults and environment)' }, 'scheduler started');
  if (file && config.reload.watch) store.watchFile();

  const onHup = (): void => {
    store.reload('signal');
  };
  process.on('SIGHUP', onHup);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now; unfinished leases expire on their own');
        resolve(EXIT.failure);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'stopping: no new work, finishing or releasing what is in flight');
      const grace = store.current().shutdown.grace.ms;
      const timer = setTimeout(() => {
        logger.error({ graceMs: grace }, 'shutdown grace period ran out');
        resolve(EXIT.failure);
      }, grace);
      timer.unref();
      app
        .stop()
        .then(() => {
          clearTimeout(timer);
          store.close();
          process.off('SIGHUP', onHup);
          logger.info('stopped');
          resolve(EXIT.ok);
        })
        .catch((error: unknown) => {
          logger.error({ err: error }, 'error while stopping');
          resolve(EXIT.failure);
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
