import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { invalid } from '../../errors.ts';
import { listAppointmentsOfSchedule } from '../../schedules/appointments.ts';
import type { ScheduleInput } from '../../schedules/schedule-rules.ts';
import { recordingsOfSchedule } from '../../recordings/rows.ts';
import { bookingCounts, getScheduleByExternalId, listSchedules, upsertSchedules, type Schedule } from '../../schedules/schedules.ts';
import type { HttpDeps } from '../app.ts';
import { errorBody, externalId, scheduleBody, scheduleBulk, scheduleDetail, scheduleListQuery, scheduleSummary, scheduleView, upsertResults } from '../schemas.ts';
import { iso, isoOrNull, makeCursor, parseCursor } from '../views.ts';

const DAY_MS = 86_400_000;

export function scheduleRoutes(scope: FastifyInstance, deps: HttpDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { db, clock } = deps;
  const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 409: errorBody };

  app.put(
    '/schedules/:externalId',
    {
      schema: {
        tags: ['schedules'],
        description:
          'Create or replace one class session. Moving or cancelling it bumps its version. startsAt must be from 2000-01-01T00:00:00Z up to two years (731 days) ahead of now (400 naming startsAt otherwise): a class already over is accepted as history (no meeting is made, its messages expire).',
        params: z.strictObject({ externalId }),
        body: scheduleBody,
        response: { 200: scheduleView.extend({ outcome: z.string() }), 201: scheduleView.extend({ outcome: z.string() }), ...errors },
      },
    },
    async (request, reply) => {
      const input: ScheduleInput = { ...request.body, externalId: request.params.externalId };
      const [result] = await upsertSchedules(db, clock, [input], { ...deps.outbox?.(), boundClassTimes: true });
      const schedule = await getScheduleByExternalId(db, request.params.externalId);
      return reply.code(result?.outcome === 'created' ? 201 : 200).send({ ...scheduleJson(schedule), outcome: result?.outcome ?? 'unchanged' });
    },
  );

  app.post(
    '/schedules/bulk',
    {
      schema: {
        tags: ['schedules'],
        description: 'Create or replace up to 5,000 schedules at once, all or nothing. Each startsAt within the bounds of PUT (400 naming the item otherwise).',
        body: scheduleBulk,
        response: { 200: upsertResults, ...errors },
      },
    },
    async (request) => ({ results: await upsertSchedules(db, clock, request.body.items, { ...deps.outbox?.(), boundClassTimes: true }) }),
  );

  app.get(
    '/schedules',
    {
      schema: {
        tags: ['schedules'],
        description: 'Schedules starting in [from, to) (default: the next 7 days), with meeting and delivery state.',
        querystring: scheduleListQuery,
        response: { 200: z.object({ items: z.array(scheduleSummary), nextCursor: z.string().nullable() }), ...errors },
      },
    },
    async (request) => {
      const from = request.query.from ?? clock.now();
      const to = request.query.to ?? new Date(from.getTime() + 7 * DAY_MS);
      if (to <= from) throw invalid('query.to', 'must be after from');
      const cursor = request.query.cursor ? parseCursor(request.query.cursor) : undefined;
      const after = cursor ? { startsAt: cursor.at, id: cursor.id } : undefined;
      const schedules = await listSchedules(db, { from, to, limit: request.query.limit, after });
      const counts = await bookingCounts(db, schedules.map((s) => s.id));
      const last = schedules.at(-1);
      return {
        items: schedules.map((s) => {
          const c = counts.get(s.id);
          return { ...scheduleJson(s), appointments: { booked: c?.booked ?? 0, cancelled: c?.cancelled ?? 0 }, deliveries: c?.deliveries ?? {} };
        }),
        nextCursor: last && schedules.length === request.query.limit ? makeCursor(last.startsAt, last.id) : null,
      };
    },
  );

  app.get(
    '/schedules/:externalId',
    {
      schema: {
        tags: ['schedules'],
        description: 'One schedule with its meeting, appointments and each delivery (state, attempts, lateness, reason).',
        params: z.strictObject({ externalId }),
        response: { 200: scheduleDetail, ...errors },
      },
    },
    async (request) => {
      const schedule = await getScheduleByExternalId(db, request.params.externalId);
      const appointments = await listAppointmentsOfSchedule(db, schedule.id);
      const recordings = await recordingsOfSchedule(db, schedule.id);
      return {
        ...scheduleJson(schedule),
        recordings: recordings.map((r) => ({ id: r.id, fileType: r.fileType, state: r.state, size: r.fileSize, sha256: r.checksumSha256, storedAt: isoOrNull(r.storedAt), attempts: r.attempts, lastError: r.lastError })),
        appointments: appointments.map((a) => ({
          externalId: a.externalId,
          cancelled: a.cancelled,
          student: a.student,
          deliveries: a.deliveries.map((d) => ({ ...d, dueAt: iso(d.dueAt), sentAt: isoOrNull(d.sentAt) })),
        })),
      };
    },
  );
}

function scheduleJson(s: Schedule): z.output<typeof scheduleView> {
  const monitoring = { ...s.monitoring, startedAt: isoOrNull(s.monitoring.startedAt), endedAt: isoOrNull(s.monitoring.endedAt) };
  return { ...s, revision: s.revision ?? null, monitoring, startsAt: iso(s.startsAt), endsAt: iso(s.endsAt), createdAt: iso(s.createdAt), updatedAt: iso(s.updatedAt) };
}
