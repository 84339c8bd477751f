/**
 * Cloud recordings appearing: `addRecording` stores files and sends recording.completed with a fresh 24-hour
 * download_token; a meeting with `auto_recording: cloud` on a licensed host of a paid account gets recordings on
 * its own when it ends after someone attended, `recordingDelayMs` later (Zoom needs processing time).
 */
import type { Clock, TimerHandle } from '../../clock.ts';
import type { MeetingStore } from './meeting-store.ts';
import type { RecordingFiles } from './recording-files.ts';
import type { AccountRecord, MeetingRecord, RecordingFile, UserRecord } from './types.ts';
import { recordingObject } from './webhook-payloads.ts';
import type { Webhooks } from './webhooks.ts';

export interface Recorder {
  add(meetingId: number, files?: RecordingFile[]): boolean;
  /** Called when a meeting instance ends. */
  ended(m: MeetingRecord): void;
  reset(): void;
}

export interface RecorderDeps {
  clock: Clock;
  store: MeetingStore;
  webhooks: Webhooks;
  files: RecordingFiles;
  baseUrl: () => string;
  hostOf: (m: MeetingRecord) => { host: UserRecord; account: AccountRecord } | undefined;
  attended: (instanceUuid: string) => boolean;
  delayMs: number;
}

export function createRecorder(deps: RecorderDeps): Recorder {
  const { clock, store } = deps;
  const timers = new Set<TimerHandle>();

  const add = (meetingId: number, files?: RecordingFile[]): boolean => {
    if (!store.addRecording(meetingId, files)) return false;
    const m = store.all().find((x) => x.id === meetingId);
    if (!m) return false;
    deps.webhooks.publish(m.accountId, 'recording.completed', recordingObject(deps.baseUrl(), m), { download_token: deps.files.issueToken(m.id) });
    return true;
  };

  return {
    add,
    ended(m) {
      const owner = deps.hostOf(m);
      const instance = m.instances.at(-1);
      const licensed = owner !== undefined && owner.host.type === 2 && owner.account.plan !== 'basic';
      if (m.settings.auto_recording !== 'cloud' || !licensed || !instance || !deps.attended(instance.uuid)) return;
      if (deps.delayMs <= 0) {
        add(m.id);
        return;
      }
      const handle = clock.setTimeout(() => {
        timers.delete(handle);
        add(m.id);
      }, deps.delayMs);
      timers.add(handle);
    },
    reset() {
      for (const t of timers) clock.clearTimeout(t);
      timers.clear();
    },
  };
}
