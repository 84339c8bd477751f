import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createPeriodTimer } from '../period-timer.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { ZoomClient } from '../zoom/client.ts';
import { ingestRecordingMeeting, type IngestInput } from './ingest.ts';
import type { RecordingMetrics } from './metrics.ts';
import { claimRecordings, nextRecordingDue, releaseRecordingClaims } from './rows.ts';
import { filesystemStore, type RecordingStore } from './store.ts';
import { sweepRecordings, type SweepReport } from './sweep.ts';
import { claimToken, downloadClaimed, type OnStored, type Outcome } from './worker.ts';

export interface RecordingsDeps {
  db: Db;
  box: SecretBox;
  clock: Clock;
  config: ConfigStore;
  client: ZoomClient;
  logger: Logger;
  /** Default: the filesystem store under recordings.dir (read once). */
  store?: RecordingStore;
  metrics?: RecordingMetrics;
  /** A schedule's first playable file is stored (the lead creates replay deliveries). */
  onStored?: OnStored;
  /** Distinguishes this worker's leases (default: host:pid:random). */
  owner?: string;
  /** Backoff jitter (tests pass a fixed one). */
  random?: () => number;
}

export interface RunReport {
  claimed: number;
  outcomes: Partial<Record<Outcome, number>>;
}

export interface Recordings {
  store: RecordingStore;
  /** The webhook's onRecording: records the files and wakes the downloader. Returns the outcome text. */
  ingest(input: IngestInput): Promise<string>;
  /** The same, shaped as the Zoom webhook runtime's `onRecording` (src/monitor/events.ts). */
  onRecording(accountId: string, object: unknown, downloadToken: string | null): Promise<string>;
  /** Claims up to recordings.concurrency due files and downloads them (tests; the loop does this itself). */
  runOnce(): Promise<RunReport>;
  sweep(): Promise<SweepReport>;
  /** Starts the download loop and the sweep (every recordings.sweepInterval); both idle while recordings.enabled is false (live). */
  start(): void;
  /** Stops claiming, aborts downloads in flight (partials stay for resuming), hands back their leases. */
  stop(): Promise<void>;
}

/** Longest sleep of the download loop: notices files another replica ingested. */
const IDLE_POLL_MS = 60_000;

export function createRecordings(deps: RecordingsDeps): Recordings {
  const { db, clock, config, logger } = deps;
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const store = deps.store ?? filesystemStore(config.current().recordings.dir);
  const workerDeps = { db, box: deps.box, clock, config, client: deps.client, store, logger, owner, metrics: deps.metrics, onStored: deps.onStored, random: deps.random };
  const stopping = new AbortController();
  let running = false;
  let unsubscribe: (() => void) | undefined;
  let active = 0;
  const inFlight = new Set<Promise<unknown>>();

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => undefined);
    return p;
  };

  /** Claims due rows; a claim that lands after stop() began is handed straight back, never worked on. */
  const claim = async (limit: number) => {
    const token = claimToken(owner);
    const rows = await claimRecordings(db, clock, { token, leaseMs: config.current().recordings.lease.ms, limit });
    if (rows.length && stopping.signal.aborted) {
      await releaseRecordingClaims(db, clock, { token });
      return [];
    }
    return rows;
  };
  const work = async (row: Awaited<ReturnType<typeof claim>>[number]): Promise<Outcome> => {
    try {
      return await downloadClaimed(workerDeps, row, stopping.signal);
    } catch (error) {
      logger.error({ err: coerceError(error), recording: row.id }, 'recording download crashed; its lease will expire and it is retried');
      return 'lost';
    }
  };

  // The loop keeps up to `concurrency` downloads going; a finished one claims the next at once.
  let wake: TimerHandle | undefined;
  let pumping = false;
  let again = false;
  const sleep = (ms: number): void => {
    if (wake) clock.clearTimeout(wake);
    if (running) wake = clock.setTimeout(pump, ms);
  };
  // Tracked, so stop() waits for a claim in flight.
  const pump = (): void => void track(pumpLoop());
  const pumpLoop = async (): Promise<void> => {
    if (!running || stopping.signal.aborted) return;
    if (pumping) {
      again = true;
      return;
    }
    // Disabled: claim nothing; a config change (or the idle poll) wakes the loop again.
    if (!config.current().recordings.enabled) return sleep(IDLE_POLL_MS);
    pumping = true;
    try {
      // A wake-up during an await (an ingest, a finished download) goes round again, never lost.
      for (;;) {
        again = false;
        const rows = await claim(config.current().recordings.concurrency - active);
        for (const row of rows) {
          active++;
          void track(work(row)).finally(() => {
            active--;
            pump();
          });
        }
        if (again && running) continue;
        if (active === 0 && running) {
          const next = await nextRecordingDue(db);
          if (again && running) continue;
          // At least a second: a due row another replica is claiming right now must not make this spin.
          sleep(next ? Math.min(Math.max(next.getTime() - clock.now().getTime(), 1000), IDLE_POLL_MS) : IDLE_POLL_MS);
        }
        break;
      }
    } catch (error) {
      logger.error({ err: coerceError(error) }, 'recording download loop failed; retrying');
      sleep(IDLE_POLL_MS);
    } finally {
      pumping = false;
    }
  };

  const sweepDeps = { clock, box: deps.box, config, client: deps.client, logger, metrics: deps.metrics };
  const sweep = (): Promise<SweepReport> => sweepRecordings(db, sweepDeps);
  const sweepTick = (): void => {
    if (!running) return;
    void track(
      // sweepRecordings itself does nothing while recordings.enabled is false; the tick keeps going.
      sweep()
        .then((r) => {
          if (r.found || r.errors) logger.info({ ...r }, 'recording sweep');
          pump();
        })
        .catch((error: unknown) => logger.error({ err: coerceError(error) }, 'recording sweep failed'))
        .finally(() => {
          if (running) sweepTimer.arm();
        }),
    );
  };
  const sweepTimer = createPeriodTimer(clock, () => config.current().recordings.sweepInterval.ms, sweepTick, (listener) => config.onChange(listener));

  const ingest = async (input: IngestInput): Promise<string> => {
    if (!config.current().recordings.enabled) return 'ignored: recordings are off (recordings.enabled: false)';
    const outcome = await ingestRecordingMeeting(db, { clock, box: deps.box, config }, input);
    if (outcome.startsWith('recordings:')) pump();
    return outcome;
  };

  return {
    store,
    ingest,
    onRecording: (accountId, object, downloadToken) => ingest({ accountId, object, downloadToken }),
    async runOnce() {
      const rows = await claim(config.current().recordings.concurrency);
      const outcomes: Partial<Record<Outcome, number>> = {};
      for (const outcome of await Promise.all(rows.map((row) => track(work(row))))) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      return { claimed: rows.length, outcomes };
    },
    sweep,
    start() {
      if (running || stopping.signal.aborted) return;
      running = true;
      // recordings.enabled is live: turning it on must not wait for the idle poll.
      unsubscribe = config.onChange((next, previous) => {
        if (next.recordings.enabled && !previous.recordings.enabled) pump();
      });
      pump();
      sweepTick();
    },
    async stop() {
      running = false;
      stopping.abort();
      unsubscribe?.();
      if (wake) clock.clearTimeout(wake);
      sweepTimer.clear();
      while (inFlight.size) await Promise.allSettled([...inFlight]);
      await releaseRecordingClaims(db, clock, { owner });
    },
  };
}
