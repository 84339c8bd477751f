import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** Field names that hold secrets anywhere in a log object; pino replaces their values. */
const SECRET_FIELDS = [
  'clientSecret',
  'channelSecret',
  'channelAccessToken',
  'webhookSecretToken',
  'accessToken',
  'access_token',
  'client_secret',
  'password',
  'secretKey',
  'token',
  'startUrl',
  'start_url',
];

export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
];

export interface LoggerOptions {
  level: string;
  /** Human-readable output (default: when stdout is a terminal). */
  pretty?: boolean;
  /** Where to write (tests capture lines here). */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const base = { level: options.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (options.destination) return pino(base, options.destination);
  const usePretty = options.pretty ?? Boolean(process.stdout.isTTY);
  return usePretty ? pino(base, pretty({ colorize: true, sync: true })) : pino(base);
}
