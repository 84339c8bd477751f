import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { readZoomCredentials } from '../zoom/accounts.ts';
import type { ZoomClient } from '../zoom/client.ts';
import { ZoomError } from '../zoom/errors.ts';
import { ingestRecordingMeeting, type IngestDeps } from './ingest.ts';
import type { RecordingMetrics } from './metrics.ts';
import { classInstances } from './instances.ts';
import { markSwept, sweepCandidates } from './rows.ts';

export interface SweepDeps extends IngestDeps {
  client: ZoomClient;
  logger: Logger;
  metrics?: RecordingMetrics | undefined;
  /** Classes asked about per sweep (default 500). */
  limit?: number | undefined;
}

export interface SweepReport {
  checked: number;
  found: number;
  none: number;
  errors: number;
}

const SWEEP_LIMIT = 500;

/**
 * Asks Zoom for the recordings of recently ended classes that have none on record: a lost or
 * undeliverable recording.completed must not lose the recording. "No recording yet" (404 code 3301)
 * is asked again a sweepInterval later, until the class leaves the lookback window. Does nothing
 * while recordings.enabled is false (read at each sweep: the key is live).
 */
export async function sweepRecordings(db: Db, deps: SweepDeps): Promise<SweepReport> {
  const cfg = deps.config.current().recordings;
  const now = deps.clock.now();
  if (!cfg.enabled) return { checked: 0, found: 0, none: 0, errors: 0 };
  // Only meetings made to record to the cloud are owed a recording; asking for the others wastes calls.
  if (deps.config.current().zoom.meeting.autoRecording !== 'cloud') return { checked: 0, found: 0, none: 0, errors: 0 };
  const candidates = await sweepCandidates(db, {
    now,
    since: new Date(now.getTime() - cfg.sweepLookback.ms),
    askedBefore: new Date(now.getTime() - cfg.sweepInterval.ms),
    limit: deps.limit ?? SWEEP_LIMIT,
  });
  const report: SweepReport = { checked: candidates.length, found: 0, none: 0, errors: 0 };
  const instances = await classInstances(db, candidates);
  for (const c of candidates) {
    let outcome: keyof Omit<SweepReport, 'checked'> = 'none';
    // Each instance the class ran as; none known (its events were lost too): the meeting id, which
    // Zoom reads as its latest instance, the class's own unless the meeting was started again since.
    for (const instance of instances.get(c.scheduleId) ?? [c.meetingId]) {
      try {
        const creds = await readZoomCredentials(db, deps.box, c.zoomAccountId);
        const raw = await deps.client.getRecordings(creds, instance);
        const result = await ingestRecordingMeeting(db, deps, { accountId: creds.accountId, object: raw, downloadToken: null });
        if (result.startsWith('recordings:')) {
          if (outcome === 'none') outcome = 'found';
          deps.logger.info({ schedule: c.scheduleId, meeting: c.meetingId, instance, result }, 'recording sweep found a recording (its webhook was missed)');
        }
      } catch (error) {
        // 404 3301: none (yet); 1001/3001: the meeting is gone. Either way nothing to fetch now.
        if (!(error instanceof ZoomError && error.status === 404)) {
          outcome = 'errors';
          deps.logger.warn({ schedule: c.scheduleId, meeting: c.meetingId, instance, err: coerceError(error) }, 'recording sweep could not ask Zoom');
        }
      }
    }
    await markSwept(db, c.scheduleId, deps.clock.now());
    report[outcome]++;
    deps.metrics?.sweeps.inc({ outcome: outcome === 'errors' ? 'error' : outcome });
  }
  return report;
}
