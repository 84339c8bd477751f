/** The accounts and their users: who may get a token, and which users a token can see. */
import { randomInt } from 'node:crypto';
import type { AccountRecord, UserRecord, ZoomAccountConfig } from './types.ts';
import { isValidTimeZone } from './time.ts';

export interface AccountRegistry {
  add(config: ZoomAccountConfig, now: Date): AccountRecord;
  get(accountId: string): AccountRecord | undefined;
  all(): AccountRecord[];
  /** A user of this account by id or email (emails compare case-insensitively, as Zoom does). */
  findUser(accountId: string, idOrEmail: string): UserRecord | undefined;
  /** Which account a user id belongs to, if any. */
  ownerOf(userId: string): AccountRecord | undefined;
}

export function createAccountRegistry(): AccountRegistry {
  const accounts = new Map<string, AccountRecord>();

  const add = (config: ZoomAccountConfig, now: Date): AccountRecord => {
    if (accounts.has(config.accountId)) throw new Error(`zoom emulator: account ${config.accountId} already exists`);
    const timezone = config.timezone ?? 'UTC';
    if (!isValidTimeZone(timezone)) throw new Error(`zoom emulator: unknown timezone ${timezone}`);
    const seen = new Set<string>();
    const users: UserRecord[] = config.users.map((u) => {
      for (const key of [u.id, u.email.toLowerCase()]) {
        if (seen.has(key) || ownerOf(key)) throw new Error(`zoom emulator: duplicate user ${key}`);
        seen.add(key);
      }
      return {
        id: u.id,
        email: u.email,
        type: u.type ?? (config.plan === 'basic' ? 1 : 2),
        firstName: u.firstName ?? u.email.split('@')[0] ?? u.id,
        lastName: u.lastName ?? '',
        timezone: u.timezone ?? timezone,
        hostingDisabled: u.hostingDisabled ?? false,
        pmi: randomInt(1_000_000_000, 9_999_999_999),
        createdAt: now,
      };
    });
    const account: AccountRecord = {
      accountId: config.accountId,
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      plan: config.plan,
      timezone,
      rateLimits: config.rateLimits,
      users,
    };
    accounts.set(account.accountId, account);
    return account;
  };

  const ownerOf = (userIdOrEmail: string): AccountRecord | undefined => {
    const key = userIdOrEmail.toLowerCase();
    for (const a of accounts.values()) {
      if (a.users.some((u) => u.id === userIdOrEmail || u.email.toLowerCase() === key)) return a;
    }
    return undefined;
  };

  return {
    add,
    get: (id) => accounts.get(id),
    all: () => [...accounts.values()],
    findUser(accountId, idOrEmail) {
      const key = idOrEmail.toLowerCase();
      return accounts.get(accountId)?.users.find((u) => u.id === idOrEmail || u.email.toLowerCase() === key);
    },
    ownerOf,
  };
}
