import type { Selectable } from 'kysely';
import type { Clock } from '../clock.ts';
import { isUniqueViolation, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { ZoomAccountsTable } from '../db/tables.ts';
import { conflict, notFound } from '../errors.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

/**
 * One pool entry: a Zoom host user that can run one live meeting at a time. Several entries may
 * share a Zoom account (same account id and S2S app credentials). Secrets are stored encrypted and
 * never leave this module except through `readZoomCredentials`.
 */
export type ZoomPlan = 'licensed' | 'basic';

export interface ZoomAccount {
  id: number;
  label: string;
  plan: ZoomPlan;
  accountId: string;
  clientId: string;
  hostUserId: string;
  hasWebhookSecretToken: boolean;
  enabled: boolean;
  exhaustedUntil: Date | null;
  /** Why Zoom refuses this host for good (user gone, not allowed to host, credentials refused), and since when; null once it works again. */
  refusedReason: string | null;
  refusedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewZoomAccount {
  label: string;
  plan: ZoomPlan;
  accountId: string;
  clientId: string;
  clientSecret: string;
  hostUserId: string;
  webhookSecretToken?: string | undefined;
}

export interface ZoomAccountPatch {
  label?: string | undefined;
  enabled?: boolean | undefined;
  clientSecret?: string | undefined;
  webhookSecretToken?: string | null | undefined;
}

export interface ZoomCredentials {
  accountId: string;
  clientId: string;
  clientSecret: string;
  webhookSecretToken: string | null;
}

const SECRET = 'zoom_accounts.client_secret';
/** The purpose the webhook secret token is encrypted for (the webhook route decrypts it too). */
export const WEBHOOK_SECRET = 'zoom_accounts.webhook_secret_token';

export async function insertZoomAccount(db: Db, box: SecretBox, clock: Clock, input: NewZoomAccount): Promise<ZoomAccount> {
  const now = clock.now();
  try {
    const row = await db
      .insertInto('zoom_accounts')
      .values({
        label: input.label,
        plan: input.plan,
        account_id: input.accountId,
        client_id: input.clientId,
        client_secret: box.encrypt(input.clientSecret, SECRET),
        host_user_id: input.hostUserId,
        webhook_secret_token: input.webhookSecretToken ? box.encrypt(input.webhookSecretToken, WEBHOOK_SECRET) : null,
        enabled: true,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toZoomAccount(row);
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw conflict(`a Zoom account with label "${input.label}" or host ${input.hostUserId} in account ${input.accountId} already exists`);
    }
    throw error;
  }
}

export async function listZoomAccounts(db: Db): Promise<ZoomAccount[]> {
  const rows = await db.selectFrom('zoom_accounts').selectAll().orderBy('id').execute();
  return rows.map(toZoomAccount);
}

export async function getZoomAccount(db: Db, id: number): Promise<ZoomAccount> {
  const row = await db.selectFrom('zoom_accounts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound(`Zoom account ${id} not found`, 'id');
  return toZoomAccount(row);
}

export async function updateZoomAccount(db: Db, box: SecretBox, clock: Clock, id: number, patch: ZoomAccountPatch): Promise<ZoomAccount> {
  try {
    const row = await db
      .updateTable('zoom_accounts')
      .set({
        updated_at: clock.now(),
        ...(patch.label !== undefined ? { label: patch.label } : {}),
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
        ...(patch.clientSecret !== undefined ? { client_secret: box.encrypt(patch.clientSecret, SECRET) } : {}),
        ...(patch.webhookSecretToken !== undefined
          ? { webhook_secret_token: patch.webhookSecretToken === null ? null : box.encrypt(patch.webhookSecretToken, WEBHOOK_SECRET) }
          : {}),
        // An operator fixed the credentials or put the host back: a past refusal says nothing of it
        // now (the next pass tries it, and a refusal is recorded again if Zoom still refuses).
        ...(patch.clientSecret !== undefined || patch.enabled === true ? { refused_reason: null, refused_at: null, refused_account_wide: false } : {}),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw notFound(`Zoom account ${id} not found`, 'id');
    return toZoomAccount(row);
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a Zoom account with label "${patch.label}" already exists`, 'label');
    throw error;
  }
}

export async function readZoomCredentials(db: Db, box: SecretBox, id: number): Promise<ZoomCredentials> {
  const row = await db.selectFrom('zoom_accounts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound(`Zoom account ${id} not found`, 'id');
  return {
    accountId: row.account_id,
    clientId: row.client_id,
    clientSecret: box.decrypt(row.client_secret, SECRET),
    webhookSecretToken: row.webhook_secret_token === null ? null : box.decrypt(row.webhook_secret_token, WEBHOOK_SECRET),
  };
}

function toZoomAccount(row: Selectable<ZoomAccountsTable>): ZoomAccount {
  return {
    id: row.id,
    label: row.label,
    plan: row.plan,
    accountId: row.account_id,
    clientId: row.client_id,
    hostUserId: row.host_user_id,
    hasWebhookSecretToken: row.webhook_secret_token !== null,
    enabled: toBool(row.enabled),
    exhaustedUntil: toOptionalDate(row.exhausted_until),
    refusedReason: row.refused_reason,
    refusedAt: toOptionalDate(row.refused_at),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}
