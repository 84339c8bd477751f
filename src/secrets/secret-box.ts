import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Encryption at rest for client secrets, channel secrets and access tokens: AES-256-GCM with a
 * random 96-bit IV, authenticated against the value's purpose (e.g. "line_channels.channel_secret")
 * so a ciphertext copied into another column does not decrypt.
 */
export interface SecretBox {
  encrypt(plain: string, purpose: string): string;
  decrypt(sealed: string, purpose: string): string;
  /** HMAC-SHA256 (base64url) of `message` under a key derived per purpose, for signed links. */
  sign(message: string, purpose: string): string;
  /** Constant-time check of a `sign` result. */
  verify(message: string, signature: string, purpose: string): boolean;
}

const VERSION = 'v1';

export class SecretKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretKeyError';
  }
}

export function parseSecretKey(base64: string): Buffer {
  const key = Buffer.from(base64.trim(), 'base64');
  if (key.length !== 32) throw new SecretKeyError('SCHEDULER_SECRET_KEY must be the base64 of exactly 32 bytes (try: openssl rand -base64 32)');
  return key;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new SecretKeyError('secret key must be 32 bytes');
  // A separate key per purpose (HKDF), so a signature never doubles as anything else made from the key.
  const macKeys = new Map<string, Buffer>();
  const macKey = (purpose: string): Buffer => {
    let k = macKeys.get(purpose);
    if (!k) {
      k = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `scheduler-sign:${purpose}`, 32));
      macKeys.set(purpose, k);
    }
    return k;
  };
  const mac = (message: string, purpose: string): Buffer => createHmac('sha256', macKey(purpose)).update(message, 'utf8').digest();
  return {
    sign: (message, purpose) => mac(message, purpose).toString('base64url'),
    verify(message, signature, purpose) {
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(message, purpose);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
    encrypt(plain, purpose) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(purpose));
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return [VERSION, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
    },
    decrypt(sealed, purpose) {
      const [version, iv, tag, body] = sealed.split('.');
      if (version !== VERSION || iv === undefined || tag === undefined || body === undefined) {
        throw new SecretKeyError(`stored secret for ${purpose} is not in the expected format`);
      }
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAAD(Buffer.from(purpose));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        throw new SecretKeyError(`cannot decrypt the stored secret for ${purpose}: wrong SCHEDULER_SECRET_KEY?`);
      }
    },
  };
}
