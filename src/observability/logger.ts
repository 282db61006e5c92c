// pino JSON logger; credentials and tokens are redacted wherever they could appear.
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'authorization', 'password', 'token',
  '*.authorization', '*.Authorization', '*.password', '*.token',
  'headers.authorization', 'req.headers.authorization', 'req.headers.cookie',
  'upstream.password', 'config.upstreams[*].password',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { service: 'regcache' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(opts, destination) : pino(opts, pino.destination({ dest: 1, sync: false }));
}
