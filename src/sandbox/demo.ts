/**
 * `npm run demo`: one evening of the service, end to end, against the Zoom and LINE emulators over
 * real HTTP, on a virtual clock (a few seconds of real time). The platform feeds classes and
 * bookings through the admin API; the provisioner makes meetings on a pool of hosts; students get
 * their links on LINE; Zoom's webhooks tell who came; an empty class is ended; a recording is saved
 * and its replay link sent. Each step runs the same code the service's loops run, one pass at a time,
 * so the story is the same on every run.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createApp } from '../app.ts';
import { virtualClock } from '../clock.ts';
import { parseConfig } from '../config/load.ts';
import { createConfigStore } from '../config/store.ts';
import { startLineEmulator } from './line/index.ts';
import { startZoomEmulator } from './zoom/index.ts';

const TOKEN = 'demo-admin-token';
const ZONE = 'Asia/Taipei';
const students = { aki: `U${'a1'.repeat(16)}`, ben: `U${'b2'.repeat(16)}`, chen: `U${'c3'.repeat(16)}`, dana: `U${'d4'.repeat(16)}` };
const names: Record<string, string> = { [students.aki]: 'Aki', [students.ben]: 'Ben', [students.chen]: 'Chen', [students.dana]: 'Dana' };

/** The demo's output is its story, on stdout (the service's own log is silenced). */
function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<void> {
  const clock = virtualClock('2026-12-01T09:00:00Z'); // 17:00 in Taipei
  const dir = await mkdtemp(join(tmpdir(), 'scheduler-demo-'));
  const zoom = await startZoomEmulator({
    clock,
    createLatencyMs: 0,
    accounts: [
      { accountId: 'acc-1', clientId: 'cid-1', clientSecret: 'csec-1', plan: 'pro', users: [{ id: 'host-1', email: 'host1@school.example' }] },
      { accountId: 'acc-2', clientId: 'cid-2', clientSecret: 'csec-2', plan: 'pro', users: [{ id: 'host-2', email: 'host2@school.example' }] },
      { accountId: 'acc-3', clientId: 'cid-3', clientSecret: 'csec-3', plan: 'basic', users: [{ id: 'host-3', email: 'trial@school.example' }] },
    ],
  });
  const line = await startLineEmulator({ clock, channels: [{ users: Object.entries(names).map(([userId, displayName]) => ({ userId, displayName })) }] });
  const channel = line.channels()[0];
  if (!channel) throw new Error('the LINE emulator has no channel');
  const config = createConfigStore(
    parseConfig(
      {
        timezone: ZONE,
        database: { url: 'sqlite::memory:' },
        http: { port: 0 },
        zoom: { apiBaseUrl: zoom.apiBaseUrl, oauthUrl: zoom.oauthUrl, meeting: { autoRecording: 'cloud' } },
        line: { apiBaseUrl: line.url },
        notifications: { meetingUrl: { format: 'text' }, feedbackUrl: { format: 'text' }, replayUrl: { enabled: true } },
        recordings: { dir },
      },
      'demo',
    ),
    { env: {} },
    clock,
  );
  const app = await createApp({ config, env: { SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64'), SCHEDULER_ADMIN_TOKEN: TOKEN }, clock, logger: pino({ level: 'silent' }), workers: false });
  const base = await app.listen();
  const api = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const json: unknown = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
  const local = (d: Date): string => d.toLocaleTimeString('en-GB', { timeZone: ZONE, hour: '2-digit', minute: '2-digit' });
  const at = async (hhmm: string, title: string): Promise<void> => {
    await clock.set(new Date(`2026-12-01T${hhmm}:00+08:00`));
    print(`\n${hhmm}  ${title}`);
  };
  const say = (line: string): void => print(`       ${line}`);
  const settleWebhooks = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      await zoom.webhooks.settle();
      await app.zoomWebhooks.idle();
      await app.line.processor.idle();
    }
  };
  let seen = 0;
  const newMessages = (): void => {
    const all = line.received();
    for (const m of all.slice(seen)) {
      const first = m.messages[0] as { text?: string } | undefined;
      const to = (Array.isArray(m.to) ? m.to : [m.to]).map((u) => names[String(u)] ?? String(u)).join(', ');
      say(`LINE → ${to}: ${(first?.text ?? '').split('\n').join(' / ')}`);
    }
    seen = all.length;
  };

  try {
    await at('17:00', 'The platform registers its Zoom hosts and LINE channel, then feeds the evening (admin API)');
    for (const [i, plan] of [[1, 'licensed'], [2, 'licensed'], [3, 'basic']] as const) {
      await api('POST', '/api/zoom-accounts', { label: `host-${i}`, plan, accountId: `acc-${i}`, clientId: `cid-${i}`, clientSecret: `csec-${i}`, hostUserId: `host-${i}`, webhookSecretToken: `whsec-${i}` });
      zoom.webhooks.subscribe({ accountId: `acc-${i}`, url: `${base}/webhooks/zoom/acc-${i}`, secretToken: `whsec-${i}` });
    }
    await api('POST', '/api/line-channels', { label: 'School OA', slug: 'school', channelId: channel.channelId, channelSecret: channel.channelSecret, channelAccessToken: channel.accessToken });
    const classes = [
      { id: 'math-1', title: 'Math', startsAt: '2026-12-01T20:00:00+08:00', endsAt: '2026-12-01T20:50:00+08:00', trial: false, feedbackUrl: 'https://forms.example.com/math-1', who: [students.aki, students.ben] },
      { id: 'eng-1', title: 'English', startsAt: '2026-12-01T20:00:00+08:00', endsAt: '2026-12-01T20:50:00+08:00', trial: false, feedbackUrl: 'https://forms.example.com/eng-1', who: [students.dana] },
      { id: 'trial-1', title: 'Trial lesson', startsAt: '2026-12-01T20:00:00+08:00', endsAt: '2026-12-01T20:30:00+08:00', trial: true, feedbackUrl: null, who: [students.chen] },
    ];
    for (const c of classes) {
      await api('PUT', `/api/schedules/${c.id}`, { title: c.title, startsAt: c.startsAt, endsAt: c.endsAt, trial: c.trial, feedbackUrl: c.feedbackUrl });
      for (const student of c.who) await api('PUT', `/api/appointments/${c.id}-${names[student]}`, { scheduleExternalId: c.id, student: { channel: 'school', lineUserId: student } });
      say(`${c.id}: ${c.title} ${c.startsAt.slice(11, 16)}–${c.endsAt.slice(11, 16)}${c.trial ? ' (trial)' : ''}, booked by ${c.who.map((s) => names[s]).join(', ')}`);
    }

    await at('17:05', 'Provisioning: one meeting per class, round-robin over the pool, never two live on one host');
    await app.provisioner.runPass();
    const meetingOf = new Map<string, number>();
    for (const c of classes) {
      const s = (await api('GET', `/api/schedules/${c.id}`)) as { meeting: { zoomAccountId: number; meetingId: string; joinUrl: string } };
      const host = ((await api('GET', `/api/zoom-accounts/${s.meeting.zoomAccountId}`)) as { label: string; plan: string }) ?? { label: '?', plan: '?' };
      meetingOf.set(c.id, Number(s.meeting.meetingId));
      say(`${c.id} → ${host.label} (${host.plan}): ${s.meeting.joinUrl}`);
    }

    await at('19:30', 'Ben blocks the school\'s LINE account (an unfollow webhook)');
    await line.webhooks.send({ channelId: channel.channelId, targetUrl: `${base}/webhooks/line/school`, events: [line.events.unfollowEvent(students.ben)] });
    await settleWebhooks();
    say('Ben is marked unfollowed: nothing more is sent to him');

    await at('19:50', 'Ten minutes before the start: each booked student gets the meeting link');
    await app.engine.runOnce();
    newMessages();

    await at('19:58', 'Aki joins math-1, Chen joins the trial lesson (Zoom webhooks: participant joined)');
    const aki = zoom.join(meetingOf.get('math-1') ?? 0, { name: 'Aki', email: 'aki@example.com' });
    const chen = zoom.join(meetingOf.get('trial-1') ?? 0, { name: 'Chen', email: 'chen@example.com' });
    await settleWebhooks();

    await at('20:10', 'Attendance check at start + grace: nobody came to eng-1, so its meeting is ended and deleted');
    const verdicts = await app.monitor.runPass();
    say(`verdicts: ${JSON.stringify(verdicts.graceChecked)}`);
    for (const c of classes) {
      const s = (await api('GET', `/api/schedules/${c.id}`)) as { meeting: { state: string }; monitoring: { verdict: string; reason: string } };
      say(`${c.id}: ${s.monitoring.verdict} (${s.monitoring.reason}); meeting ${s.meeting.state}`);
    }

    await at('20:30', 'Chen leaves the trial lesson (it has no feedback link, so nothing is sent)');
    zoom.leave(meetingOf.get('trial-1') ?? 0, chen);
    await settleWebhooks();
    await app.engine.runOnce();
    newMessages();

    await at('20:40', 'Ten minutes before the end: the feedback link (not for eng-1, which ended early)');
    await app.engine.runOnce();
    newMessages();

    await at('20:50', 'Aki leaves; Zoom records the class and says so (recording.completed)');
    zoom.leave(meetingOf.get('math-1') ?? 0, aki);
    await settleWebhooks();
    const stored = await app.recordings.runOnce();
    say(`recordings downloaded, checked and stored: ${JSON.stringify(stored.outcomes)}`);
    await app.engine.runOnce();
    newMessages();
    // The replay link is served by the service itself (signed, from the stored file).
    const replayPath = /\/replay\/[^\s"]+/.exec(JSON.stringify(line.received().at(-1)?.messages ?? ''))?.[0];
    if (replayPath) {
      const video = await fetch(`${base}${replayPath}`);
      const bytes = Buffer.from(await video.arrayBuffer());
      const original = zoom.recordingFile(((await app.database.db.selectFrom('recordings').select('file_id').where('file_type', '=', 'MP4').executeTakeFirst()) ?? { file_id: '' }).file_id);
      say(`GET ${replayPath.slice(0, 24)}… → ${video.status}, ${bytes.length} bytes, ${original && createHash('sha256').update(bytes).digest('hex') === original.sha256 ? 'the same bytes Zoom recorded' : 'NOT the bytes Zoom recorded'}`);
    }

    await at('21:00', 'What an operator sees (GET /api/status and each booking)');
    const status = (await api('GET', '/api/status')) as Record<string, unknown>;
    say(`deliveries: ${JSON.stringify(status.deliveries)}`);
    say(`monitoring: ${JSON.stringify(status.monitoring)}`);
    for (const c of classes) {
      const s = (await api('GET', `/api/schedules/${c.id}`)) as { appointments: { externalId: string; deliveries: { kind: string; state: string; latenessMs: number | null; lastError: string | null }[] }[] };
      for (const a of s.appointments) {
        say(`${a.externalId}: ${a.deliveries.map((d) => `${d.kind} ${d.state}${d.latenessMs !== null ? ` (${d.latenessMs} ms late)` : ''}${d.state !== 'sent' && d.lastError ? ` (${d.lastError})` : ''}`).join('; ')}`);
      }
    }
    print(`\nZoom: ${zoom.counters().meetings.created} meetings created, ${zoom.counters().meetings.deleted} deleted; LINE: ${line.received().length} messages delivered. Times are in ${ZONE}; it is ${local(clock.now())} there.`);
  } finally {
    await app.stop();
    await zoom.close();
    await line.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
