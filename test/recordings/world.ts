import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { buildHttpApp } from '../../src/http/app.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { RecordingStore } from '../../src/recordings/store.ts';
import { createConfigStore, type ConfigStore, type ReloadOutcome } from '../../src/config/store.ts';
import type { Dialect } from '../../src/db/database.ts';
import { createRecordingMetrics } from '../../src/recordings/metrics.ts';
import { createRecordings, type Recordings, type RecordingsDeps } from '../../src/recordings/runtime.ts';
import { recordingsOfSchedule, type RecordingRow } from '../../src/recordings/rows.ts';
import { Registry } from 'prom-client';
import type { RecordingFile } from '../../src/sandbox/zoom/index.ts';
import { openZoomWorld, silent, type ZoomWorld } from '../zoom/world.ts';

/** A licensed host, one provisioned class, the recordings runtime, a temp store dir and a webhook sink. */
export interface RecordingWorld extends ZoomWorld {
  dir: string;
  scheduleId: number;
  meetingNumber: number;
  recordings(extra?: Partial<RecordingsDeps>): Recordings;
  /** Adds recording files in the emulator and returns what its recording.completed carried. */
  record(files?: RecordingFile[]): Promise<{ accountId: string; object: unknown; downloadToken: string | null }>;
  rows(): Promise<RecordingRow[]>;
  stored: { id: number; scheduleId: number; fileType: string }[];
  /** A config store read from a file (so reloads are real), with these recordings settings; set() rewrites and reloads it. */
  liveConfig(recordings: Record<string, unknown>): { config: ConfigStore; set(recordings: Record<string, unknown>): ReloadOutcome };
}

export const file = (id: string, fileType: string, size: number): RecordingFile => ({
  id,
  file_type: fileType,
  file_extension: fileType,
  file_size: size,
  recording_type: fileType === 'M4A' ? 'audio_only' : 'shared_screen_with_speaker_view',
  status: 'completed',
});

export async function openRecordingWorld(dialect: Dialect, config: Record<string, unknown> = {}, autoRecording: 'cloud' | 'none' = 'cloud'): Promise<RecordingWorld> {
  const dir = await mkdtemp(join(tmpdir(), 'recordings-'));
  const world = await openZoomWorld(dialect, [{ label: 'pro', plan: 'licensed' }], {
    config: { zoom: { meeting: { autoRecording } }, recordings: { dir, retry: { attempts: 3, baseDelay: '1m', maxDelay: '10m' }, ...config } },
  });
  await world.schedule('c1', '2026-12-01T01:00:00Z', 60);
  await world.provisioner().runPass();
  const schedule = await world.database.db.selectFrom('schedules').selectAll().where('external_id', '=', 'c1').executeTakeFirstOrThrow();
  const meetingNumber = Number(schedule.meeting_id);

  // The emulator delivers webhooks over HTTP; this sink answers 200 and keeps the bodies.
  const bodies: string[] = [];
  const sink: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const port = (sink.address() as AddressInfo).port;
  world.em.webhooks.subscribe({ accountId: 'acc-pro', url: `http://127.0.0.1:${port}/hook`, secretToken: 'secret', events: ['recording.completed'] });

  const stored: RecordingWorld['stored'] = [];
  const metrics = createRecordingMetrics(new Registry());
  return {
    ...world,
    dir,
    scheduleId: schedule.id,
    meetingNumber,
    stored,
    recordings: (extra = {}) =>
      createRecordings({
        db: world.database.db,
        box: world.box,
        clock: world.clock,
        config: world.config,
        client: world.client,
        logger: silent,
        metrics,
        random: () => 1,
        onStored: (r) => void stored.push(r),
        ...extra,
      }),
    async record(files) {
      const before = bodies.length;
      world.em.addRecording(meetingNumber, files);
      await world.em.webhooks.settle();
      const raw = bodies.slice(before).at(-1);
      if (!raw) throw new Error('no recording.completed arrived');
      const envelope = JSON.parse(raw) as { download_token?: string; payload: { account_id: string; object: unknown } };
      return { accountId: envelope.payload.account_id, object: envelope.payload.object, downloadToken: envelope.download_token ?? null };
    },
    rows: () => recordingsOfSchedule(world.database.db, schedule.id),
    liveConfig(recordings) {
      const path = join(dir, 'scheduler.yaml');
      const write = (r: Record<string, unknown>): void => {
        const raw = {
          zoom: { apiBaseUrl: world.em.apiBaseUrl, oauthUrl: world.em.oauthUrl, retry: { baseDelay: '0ms' }, meeting: { autoRecording } },
          recordings: { dir, retry: { attempts: 3, baseDelay: '1m', maxDelay: '10m' }, ...config, ...r },
        };
        writeFileSync(path, JSON.stringify(raw)); // JSON is YAML
      };
      write(recordings);
      const store = createConfigStore(loadConfig({ file: path, env: {} }), { file: path, env: {} }, world.clock);
      return {
        config: store,
        set: (r) => {
          write(r);
          return store.reload('api');
        },
      };
    },
    async close() {
      await new Promise<void>((resolve) => sink.close(() => resolve()));
      await world.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The real HTTP app over a recording world (the replay route reads `store`), for `inject`. */
export function replayApp(w: RecordingWorld, store: RecordingStore): ReturnType<typeof buildHttpApp> {
  return buildHttpApp({
    db: w.database.db,
    clock: w.clock,
    box: w.box,
    config: w.config,
    logger: silent,
    metrics: createMetrics(),
    adminToken: 'admin',
    readiness: async () => ({ ready: true, checks: {} }),
    recordings: { store },
  });
}
