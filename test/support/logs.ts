import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/logger.ts';

/** The real logger (with its redaction), writing into an array the test can search. */
export function capturingLogger(): { logger: Logger; logs: string[] } {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), logs };
}
