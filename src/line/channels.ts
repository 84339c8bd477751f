import { createHash } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Clock } from '../clock.ts';
import { isUniqueViolation, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { LineChannelsTable } from '../db/tables.ts';
import { conflict, notFound } from '../errors.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

/** One LINE Official Account (Messaging API channel), reached by its webhook slug/subdomain. */
export interface LineChannel {
  id: number;
  label: string;
  slug: string;
  channelId: string;
  botUserId: string | null;
  enabled: boolean;
  pausedUntil: Date | null;
  pauseReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewLineChannel {
  label: string;
  slug: string;
  channelId: string;
  channelSecret: string;
  channelAccessToken: string;
  botUserId?: string | undefined;
}

export interface LineChannelPatch {
  label?: string | undefined;
  enabled?: boolean | undefined;
  channelSecret?: string | undefined;
  channelAccessToken?: string | undefined;
  botUserId?: string | null | undefined;
}

export interface LineCredentials {
  channelSecret: string;
  channelAccessToken: string;
}

const SECRET = 'line_channels.channel_secret';
const TOKEN = 'line_channels.channel_access_token';

export async function insertLineChannel(db: Db, box: SecretBox, clock: Clock, input: NewLineChannel): Promise<LineChannel> {
  const now = clock.now();
  try {
    const row = await db
      .insertInto('line_channels')
      .values({
        label: input.label,
        slug: input.slug,
        channel_id: input.channelId,
        channel_secret: box.encrypt(input.channelSecret, SECRET),
        channel_access_token: box.encrypt(input.channelAccessToken, TOKEN),
        bot_user_id: input.botUserId ?? null,
        enabled: true,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toLineChannel(row);
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw conflict(`a LINE channel with label "${input.label}", slug "${input.slug}" or channel id ${input.channelId} already exists`);
    }
    throw error;
  }
}

export async function listLineChannels(db: Db): Promise<LineChannel[]> {
  const rows = await db.selectFrom('line_channels').selectAll().orderBy('id').execute();
  return rows.map(toLineChannel);
}

export async function getLineChannel(db: Db, id: number): Promise<LineChannel> {
  const row = await db.selectFrom('line_channels').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound(`LINE channel ${id} not found`, 'id');
  return toLineChannel(row);
}

export async function findLineChannelsBySlug(db: Db, slugs: readonly string[]): Promise<Map<string, LineChannel>> {
  if (slugs.length === 0) return new Map();
  const rows = await db.selectFrom('line_channels').selectAll().where('slug', 'in', [...new Set(slugs)]).execute();
  return new Map(rows.map((row) => [row.slug, toLineChannel(row)]));
}

export async function updateLineChannel(db: Db, box: SecretBox, clock: Clock, id: number, patch: LineChannelPatch): Promise<LineChannel> {
  try {
    const row = await db
      .updateTable('line_channels')
      .set({
        updated_at: clock.now(),
        ...(patch.label !== undefined ? { label: patch.label } : {}),
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
        ...(patch.channelSecret !== undefined ? { channel_secret: box.encrypt(patch.channelSecret, SECRET) } : {}),
        // A new token ends a pause (a refused token pauses the channel); a quota pause comes back by itself if it still applies.
        ...(patch.channelAccessToken !== undefined
          ? { channel_access_token: box.encrypt(patch.channelAccessToken, TOKEN), paused_until: null, pause_reason: null }
          : {}),
        ...(patch.botUserId !== undefined ? { bot_user_id: patch.botUserId } : {}),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw notFound(`LINE channel ${id} not found`, 'id');
    return toLineChannel(row);
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a LINE channel with label "${patch.label}" already exists`, 'label');
    throw error;
  }
}

export async function readLineCredentials(db: Db, box: SecretBox, id: number): Promise<LineCredentials> {
  const row = await db.selectFrom('line_channels').select(['channel_secret', 'channel_access_token']).where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound(`LINE channel ${id} not found`, 'id');
  return { channelSecret: box.decrypt(row.channel_secret, SECRET), channelAccessToken: box.decrypt(row.channel_access_token, TOKEN) };
}

/** Stops sending through a channel until `until` (null: until an operator acts), with the reason shown in its API view. */
export async function pauseLineChannel(db: Db, clock: Clock, id: number, until: Date | null, reason: string): Promise<void> {
  await db.updateTable('line_channels').set({ paused_until: until, pause_reason: reason, updated_at: clock.now() }).where('id', '=', id).execute();
}

/**
 * Records the bot's user id from a webhook whose signature verified (its `destination` is the bot),
 * when the operator did not give it. Later webhooks are then checked against it.
 */
export async function learnBotUserId(db: Db, clock: Clock, id: number, botUserId: string): Promise<void> {
  await db.updateTable('line_channels').set({ bot_user_id: botUserId, updated_at: clock.now() }).where('id', '=', id).where('bot_user_id', 'is', null).execute();
}

/**
 * Changes whenever a channel is added or any of its columns changes (enabled, paused, secrets
 * rotated): the pool's cue to reload. A digest of the rows rather than the latest `updated_at`,
 * which two changes within one millisecond would share.
 */
export async function lineChannelsFingerprint(db: Db): Promise<string> {
  const rows = await db.selectFrom('line_channels').selectAll().orderBy('id').execute();
  const hash = createHash('sha256');
  for (const row of rows) hash.update(JSON.stringify(row));
  return hash.digest('base64');
}

/** Every channel with its decrypted secret and token, for the in-memory pool. */
export async function listLineChannelsWithCredentials(db: Db, box: SecretBox): Promise<(LineChannel & LineCredentials)[]> {
  const rows = await db.selectFrom('line_channels').selectAll().orderBy('id').execute();
  return rows.map((row) => ({
    ...toLineChannel(row),
    channelSecret: box.decrypt(row.channel_secret, SECRET),
    channelAccessToken: box.decrypt(row.channel_access_token, TOKEN),
  }));
}

function toLineChannel(row: Selectable<LineChannelsTable>): LineChannel {
  return {
    id: row.id,
    label: row.label,
    slug: row.slug,
    channelId: row.channel_id,
    botUserId: row.bot_user_id,
    enabled: toBool(row.enabled),
    pausedUntil: toOptionalDate(row.paused_until),
    pauseReason: row.pause_reason,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}
