/** Server-to-Server OAuth: the token endpoint and the bearer tokens it hands out. */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.ts';
import type { AccountRegistry } from './accounts.ts';
import { type Reply, zoomError } from './http.ts';

/** Granular scopes a real token for this app would carry (doc §1). */
const SCOPES = [
  'meeting:write:meeting:admin',
  'meeting:read:meeting:admin',
  'meeting:read:list_meetings:admin',
  'meeting:update:meeting:admin',
  'meeting:update:status:admin',
  'meeting:delete:meeting:admin',
  'meeting:read:list_past_participants:admin',
  'dashboard:read:list_meeting_participants:admin',
  'cloud_recording:read:list_recording_files:admin',
  'user:read:user:admin',
].join(' ');

/**
 * `multiple`: every issued token stays valid until it expires (Zoom's behaviour since the multiple-token
 * change). `latest-only`: a new token invalidates the account's earlier ones (the 2022–2023 behaviour).
 */
export type TokenPolicy = 'multiple' | 'latest-only';

interface TokenRecord {
  accountId: string;
  expiresAt: number;
  /** Set when expireTokens() or the latest-only policy killed it. */
  revoked: 'expired' | 'superseded' | null;
}

export type TokenCheck = { ok: true; accountId: string } | { ok: false; reply: Reply };

export interface TokenStore {
  issue(accountId: string): { token: string; expiresIn: number };
  verify(authorization: string | undefined): TokenCheck;
  expire(accountId?: string): void;
  /** Token requests per account (any outcome). */
  requests(accountId: string): number;
  countRequest(accountId: string): void;
  issued(): number;
  reset(): void;
}

export function createTokenStore(clock: Clock, ttlSeconds: number, policy: TokenPolicy): TokenStore {
  const tokens = new Map<string, TokenRecord>();
  const requestCounts = new Map<string, number>();
  let issuedCount = 0;

  const invalid = (): Reply => zoomError(401, 124, 'Invalid access token.');
  const expired = (): Reply => zoomError(401, 124, 'Access token is expired.');

  return {
    issue(accountId) {
      if (policy === 'latest-only') {
        for (const t of tokens.values()) if (t.accountId === accountId && !t.revoked) t.revoked = 'superseded';
      }
      const token = randomBytes(32).toString('base64url');
      tokens.set(token, { accountId, expiresAt: clock.now().getTime() + ttlSeconds * 1000, revoked: null });
      issuedCount++;
      return { token, expiresIn: ttlSeconds };
    },
    verify(authorization) {
      const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
      const record = m?.[1] ? tokens.get(m[1]) : undefined;
      if (!record || record.revoked === 'superseded') return { ok: false, reply: invalid() };
      if (record.revoked === 'expired' || clock.now().getTime() >= record.expiresAt) return { ok: false, reply: expired() };
      return { ok: true, accountId: record.accountId };
    },
    expire(accountId) {
      for (const t of tokens.values()) if (accountId === undefined || t.accountId === accountId) t.revoked ??= 'expired';
    },
    requests: (accountId) => requestCounts.get(accountId) ?? 0,
    countRequest(accountId) {
      requestCounts.set(accountId, (requestCounts.get(accountId) ?? 0) + 1);
    },
    issued: () => issuedCount,
    reset() {
      tokens.clear();
      requestCounts.clear();
      issuedCount = 0;
    },
  };
}

/** OAuth errors use the OAuth shape `{reason, error}`, not Zoom's `{code, message}`; Zoom answers them with 400. */
const oauthError = (error: string, reason: string): Reply => ({ status: 400, body: { reason, error } });

export interface TokenRequest {
  query: URLSearchParams;
  rawBody: string;
  contentType: string | undefined;
  authorization: string | undefined;
}

/** `POST /oauth/token?grant_type=account_credentials&account_id=…` with Basic client auth (query or form body). */
export function handleTokenRequest(req: TokenRequest, accounts: AccountRegistry, store: TokenStore, apiUrl: string): Reply {
  const form = req.contentType?.includes('application/x-www-form-urlencoded') ? new URLSearchParams(req.rawBody) : undefined;
  const param = (name: string): string | null => req.query.get(name) ?? form?.get(name) ?? null;
  const accountId = param('account_id');
  if (accountId) store.countRequest(accountId);

  if (param('grant_type') !== 'account_credentials') return oauthError('unsupported_grant_type', 'unsupported grant type');
  const credentials = parseBasic(req.authorization);
  const owner = credentials && accounts.all().find((a) => a.clientId === credentials.clientId);
  if (!credentials || !owner || owner.clientSecret !== credentials.clientSecret) {
    return oauthError('invalid_client', 'Invalid client_id or client_secret');
  }
  if (!accountId) return oauthError('invalid_request', 'Missing account_id');
  if (owner.accountId !== accountId) return oauthError('invalid_request', 'Invalid account_id');

  const { token, expiresIn } = store.issue(accountId);
  return {
    status: 200,
    body: { access_token: token, token_type: 'bearer', expires_in: expiresIn, scope: SCOPES, api_url: apiUrl },
  };
}

function parseBasic(header: string | undefined): { clientId: string; clientSecret: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { clientId: decoded.slice(0, colon), clientSecret: decoded.slice(colon + 1) };
}
