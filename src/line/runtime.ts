import { readFile } from 'node:fs/promises';
import type { Clock } from '../clock.ts';
import { ConfigError } from '../config/load.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { createEventProcessor, type EventProcessor } from './event-processor.ts';
import { createImagemapImages, type ImagemapImages } from './imagemap.ts';
import { renderImagemap } from './imagemap-render.ts';
import { createChannelPool, type ChannelPool } from './pool.ts';
import { createRateLimiter, type RateLimiter } from './rate-limiter.ts';
import { createLineClient } from './client.ts';
import { createRequestLog } from './requests.ts';
import { createGroupCommit } from '../db/group-commit.ts';
import { markChunksSent, type SentChunk } from './multicast-send.ts';
import type { SendDeps } from './send.ts';

/**
 * The LINE side of the service, built from its parts: the channel pool, the shared rate limiter,
 * the imagemap images and the webhook event processor. `app.ts` wires it in; tests and benchmarks
 * build the same thing.
 */
export interface LineRuntime {
  pool: ChannelPool;
  limiter: RateLimiter;
  imagemap: ImagemapImages;
  processor: EventProcessor;
  /** Everything `sendPush` / `sendMulticastChunk` need. */
  send: SendDeps;
  /** Starts the background work: pool refresh and webhook event processing (with a sweep at once). */
  start(): void;
  stop(): Promise<void>;
}

export interface LineRuntimeOptions {
  db: Db;
  box: SecretBox;
  clock: Clock;
  config: ConfigStore;
  logger: Logger;
  random?: () => number;
}

/**
 * Start-up could not render the imagemap image. If the configured source itself does not render (a
 * file the schema's header check let through), that is the operator's configuration to fix, named
 * as such; any other failure (the database) is rethrown as it was.
 */
async function imagemapStartupError(source: string | null, error: unknown): Promise<never> {
  if (source !== null) {
    const problem = await readFile(source)
      .then(renderImagemap)
      .then(
        () => undefined,
        (cause: unknown) => coerceError(cause).message,
      );
    if (problem !== undefined) throw new ConfigError([`imagemap.source: "${source}" cannot be used as an image: ${problem}`], 'imagemap.source');
  }
  throw error;
}

export async function startLine(options: LineRuntimeOptions): Promise<LineRuntime> {
  const { db, box, clock, config, logger } = options;
  const pool = await createChannelPool({ db, box, clock, config, logger });
  const limiter = createRateLimiter({ db, clock, config });
  const imagemap = createImagemapImages({ db, clock, config });
  const image = await imagemap.ensure().catch((error: unknown) => imagemapStartupError(config.current().imagemap.source, error));
  logger.info({ hash: image.hash, height: image.height }, 'imagemap images ready');
  const current = config.current();
  const imagemapKinds = Object.entries({ meetingUrl: current.notifications.meetingUrl, feedbackUrl: current.notifications.feedbackUrl }).filter(([, n]) => n.format === 'imagemap');
  if (imagemapKinds.length && !current.http.publicBaseUrl.startsWith('https:')) {
    // Allowed for a loopback development set-up only (the config refuses it otherwise); LINE would refuse these messages.
    logger.warn({ publicBaseUrl: current.http.publicBaseUrl, kinds: imagemapKinds.map(([k]) => k) }, 'imagemap messages need an https http.publicBaseUrl: they will fail until it is set');
  }
  const send: SendDeps = {
    db,
    clock,
    config,
    logger,
    pool,
    // Sockets to LINE: as many as the engine keeps requests in flight (live: a change replaces the pool).
    api: createLineClient(clock, { connections: () => config.current().notifications.sendConcurrency }),
    limiter,
    requestLog: createRequestLog(db),
    sentChunks: createGroupCommit<SentChunk>((batch) => markChunksSent(db, batch)),
    ...(options.random ? { random: options.random } : {}),
  };
  const processor = createEventProcessor(send);

  // A new source image is rendered in the background; until it is stored the previous one stays in force.
  const unsubscribe = config.onChange((_next, _previous, changed) => {
    if (!changed.some((key) => key.startsWith('imagemap.'))) return;
    imagemap.ensure().then(
      (ref) => {
        // A later change may have overtaken this one while it rendered; its image is the one in force.
        if (imagemap.current()?.hash === ref.hash) logger.info({ hash: ref.hash, height: ref.height }, 'imagemap image changed');
        else logger.info({ hash: ref.hash, current: imagemap.current()?.hash }, 'imagemap image stored but not used: a later source change overtook it');
      },
      (error: unknown) => logger.error({ err: coerceError(error) }, 'the new imagemap source could not be used; the previous image stays in force'),
    );
  });

  return {
    pool,
    limiter,
    imagemap,
    processor,
    send,
    start() {
      pool.start();
      processor.start();
    },
    async stop() {
      unsubscribe();
      pool.stop();
      await processor.stop();
      await send.api.close();
    },
  };
}
