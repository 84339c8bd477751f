/**
 * `GET /v2/metrics/meetings/{id}/participants?type=live` (Heavy; Business plan or higher, zoom-api.md §5–§6): who
 * is in a live meeting now. A meeting that is not live has nobody in it (an empty list).
 */
import { type Reply, zoomError } from './http.ts';
import { type ApiCall, type ApiRoute, meetingMissing, ownMeeting } from './meetings.ts';
import { zoomTime } from './time.ts';

function liveParticipants(call: ApiCall, [id = '']: string[]): Reply {
  if (call.account.plan !== 'business') return zoomError(400, 200, 'No permission.');
  const type = call.query.get('type') ?? 'live';
  if (type !== 'live') return zoomError(400, 300, `Zoom emulator: only type=live is emulated (got ${type}).`);
  const m = ownMeeting(call, id);
  if (!m) return meetingMissing(id);
  const pageSize = Math.min(Math.max(Number(call.query.get('page_size') ?? '30') || 30, 1), 300);
  const present = m.state === 'started' ? call.deps.attendance.present(m.id) : [];
  const participants = present.slice(0, pageSize).map((p) => ({
    id: p.userId,
    user_id: p.memberId,
    user_name: p.name,
    email: p.email,
    join_time: zoomTime(p.joinedAt),
    status: 'in_meeting',
    participant_uuid: p.uuid,
    ...(p.userId ? { participant_user_id: p.userId } : {}),
  }));
  return { status: 200, body: { page_size: pageSize, total_records: present.length, next_page_token: '', participants } };
}

export const metricsRoutes: ReadonlyArray<ApiRoute> = [
  { method: 'GET', pattern: /^\/v2\/metrics\/meetings\/([^/]+)\/participants$/, category: 'Heavy', slow: false, handler: liveParticipants },
];
