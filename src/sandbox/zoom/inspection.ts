/**
 * `/_emulator/...`: the programmatic inspection and control API over HTTP (JSON), for a service or
 * benchmark running in another process. Never logged, never rate limited, never faulted.
 */
import { z } from 'zod';
import type { FaultRule } from './faults.ts';
import { type Reply, parseJsonObject } from './http.ts';
import type { ZoomEmulator } from './index.ts';

type Control = Omit<ZoomEmulator, 'url' | 'apiBaseUrl' | 'oauthUrl' | 'close'>;

const categories = z.enum(['Light', 'Medium', 'Heavy', 'Resource-intensive']);

const accountSchema = z.object({
  accountId: z.string().min(1),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  plan: z.enum(['basic', 'pro', 'business']),
  timezone: z.string().optional(),
  users: z.array(
    z.object({
      id: z.string().min(1),
      email: z.string().min(1),
      type: z.union([z.literal(1), z.literal(2)]).optional(),
      firstName: z.string().optional(),
      lastName: z.string().optional(),
      timezone: z.string().optional(),
      hostingDisabled: z.boolean().optional(),
    }),
  ),
  rateLimits: z
    .object({ perSecond: z.partialRecord(categories, z.number()).optional(), daily: z.partialRecord(categories, z.number().nullable()).optional() })
    .optional(),
});

const faultSchema = z.union([
  z.object({ kind: z.literal('timeout') }),
  z.object({ kind: z.literal('drop') }),
  z.object({ kind: z.literal('delay'), ms: z.number().min(0) }),
  z.object({ kind: z.literal('after-commit-drop') }),
  z.object({ kind: z.literal('after-commit-error'), status: z.int().optional(), body: z.unknown().optional() }),
  z.object({ kind: z.literal('status').optional(), status: z.int(), body: z.unknown().optional(), headers: z.record(z.string(), z.string()).optional() }),
]);

/** `path` is an exact pathname, `pathPattern` a RegExp source; `times: null` = unlimited. */
const faultRuleSchema = z.object({
  method: z.string().optional(),
  path: z.string().optional(),
  pathPattern: z.string().optional(),
  times: z.int().min(1).nullable().optional(),
  fault: faultSchema,
});

const personSchema = z.object({
  name: z.string().min(1),
  email: z.string().optional(),
  userId: z.string().optional(),
  role: z.enum(['participant', 'host']).optional(),
});

const subscriptionSchema = z.object({
  accountId: z.string().min(1),
  url: z.url(),
  secretToken: z.string().min(1),
  events: z.array(z.string()).optional(),
});

const ok = (body: unknown): Reply => ({ status: 200, body });
const bad = (message: string): Reply => ({ status: 400, body: { error: message } });

function parse<T>(schema: z.ZodType<T>, rawBody: string): T | Reply {
  const body = parseJsonObject(rawBody === '' ? '{}' : rawBody);
  if (!body) return bad('body must be a JSON object');
  const result = schema.safeParse(body);
  return result.success ? result.data : bad(z.prettifyError(result.error));
}

const isReply = (v: unknown): v is Reply => typeof v === 'object' && v !== null && 'status' in v && typeof v.status === 'number' && 'body' in v;

/** Attendance and webhook subscriptions, so a demo process can drive meetings and receive signed events. */
async function liveControl(
  emulator: Control,
  unsubscribers: Map<number, () => void>,
  nextId: () => number,
  route: string,
  rawBody: string,
): Promise<Reply | undefined> {
  const people = /^(POST|GET) \/meetings\/(\d+)\/(join|leave|participants|script)$/.exec(route);
  if (people) {
    const id = Number(people[2]);
    const action = `${people[1]} ${people[3]}`;
    const attempt = (fn: () => Reply): Reply => {
      try {
        return fn();
      } catch (err) {
        return bad(err instanceof Error ? err.message : String(err));
      }
    };
    if (action === 'GET participants') return ok(emulator.participants(id));
    if (action === 'POST join') {
      const person = parse(personSchema, rawBody);
      return isReply(person) ? person : attempt(() => ok({ uuid: emulator.join(id, person) }));
    }
    if (action === 'POST leave') {
      const body = parse(z.object({ uuid: z.string() }), rawBody);
      return isReply(body) ? body : ok({ left: emulator.leave(id, body.uuid) });
    }
    if (action === 'POST script') {
      const body = parse(z.object({ steps: z.array(z.object({ atMinute: z.number(), join: personSchema.optional(), leave: z.string().optional() })) }), rawBody);
      return isReply(body) ? body : attempt(() => (emulator.script(id, body.steps), ok({ scripted: body.steps.length })));
    }
    return undefined;
  }
  const unsubscribe = /^DELETE \/webhooks\/subscriptions\/(\d+)$/.exec(route);
  if (unsubscribe) {
    const id = Number(unsubscribe[1]);
    unsubscribers.get(id)?.();
    return ok({ removed: unsubscribers.delete(id) });
  }
  switch (route) {
    case 'POST /webhooks/subscriptions': {
      const sub = parse(subscriptionSchema, rawBody);
      if (isReply(sub)) return sub;
      const id = nextId();
      unsubscribers.set(id, emulator.webhooks.subscribe(sub));
      return { status: 201, body: { id } };
    }
    case 'GET /webhooks/deliveries':
      return ok(emulator.webhooks.deliveries());
    case 'POST /webhooks/validate': {
      const body = parse(z.object({ accountId: z.string().min(1) }), rawBody);
      return isReply(body) ? body : ok(await emulator.webhooks.validate(body.accountId));
    }
    default:
      return undefined;
  }
}

export function createControl(emulator: Control): (method: string, path: string, query: URLSearchParams, rawBody: string) => Promise<Reply> {
  const unsubscribers = new Map<number, () => void>();
  let subscriptionIds = 1;
  return async (method, path, query, rawBody) => {
    const route = `${method} ${path.replace(/^\/_emulator/, '')}`;
    const live = await liveControl(emulator, unsubscribers, () => subscriptionIds++, route, rawBody);
    if (live) return live;
    const meetingAction = /^POST \/meetings\/(\d+)\/(start|end|recordings)$/.exec(route);
    if (meetingAction) {
      const id = Number(meetingAction[1]);
      if (meetingAction[2] === 'start') {
        const opts = parse(z.object({ by: z.enum(['participant', 'host']).optional() }), rawBody);
        return isReply(opts) ? opts : ok(emulator.startMeeting(id, opts));
      }
      if (meetingAction[2] === 'end') return ok({ ended: emulator.endMeeting(id) });
      return ok({ added: emulator.addRecording(id) });
    }
    const oneMeeting = /^GET \/meetings\/(\d+)$/.exec(route);
    if (oneMeeting) {
      const m = emulator.meeting(Number(oneMeeting[1]));
      return m ? ok(m) : { status: 404, body: { error: 'no such meeting' } };
    }
    switch (route) {
      case 'GET /meetings':
        return ok(emulator.meetings({ accountId: query.get('account_id') ?? undefined, hostId: query.get('host_id') ?? undefined }));
      case 'GET /requests':
        return ok(emulator.requests());
      case 'GET /token-requests': {
        const accountId = query.get('account_id');
        return accountId ? ok({ accountId, count: emulator.tokenRequests(accountId) }) : bad('account_id is required');
      }
      case 'GET /counters':
        return ok(emulator.counters());
      case 'GET /overlaps':
        return ok(emulator.overlaps({ activeOnly: query.get('active') === 'true' }));
      case 'GET /violations':
        return ok(emulator.violations());
      case 'GET /faults':
        return ok(emulator.faults.list());
      case 'POST /faults': {
        const rule = parse(faultRuleSchema, rawBody);
        if (isReply(rule)) return rule;
        const faultRule: FaultRule = {
          method: rule.method,
          path: rule.pathPattern !== undefined ? new RegExp(rule.pathPattern) : rule.path,
          times: rule.times === null ? Infinity : rule.times,
          fault: rule.fault,
        };
        return { status: 201, body: { id: emulator.faults.add(faultRule).id } };
      }
      case 'DELETE /faults':
        emulator.faults.clear();
        return ok({ cleared: true });
      case 'POST /expire-tokens': {
        const body = parse(z.object({ accountId: z.string().optional() }), rawBody);
        if (isReply(body)) return body;
        emulator.expireTokens(body.accountId);
        return ok({ expired: true });
      }
      case 'POST /accounts': {
        const account = parse(accountSchema, rawBody);
        if (isReply(account)) return account;
        try {
          emulator.addAccount(account);
        } catch (err) {
          return bad(err instanceof Error ? err.message : String(err));
        }
        return { status: 201, body: { accountId: account.accountId } };
      }
      case 'POST /reset':
        emulator.reset();
        return ok({ reset: true });
      default:
        return { status: 404, body: { error: `unknown emulator route ${route}` } };
    }
  };
}
