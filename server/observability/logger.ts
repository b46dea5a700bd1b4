import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Every path where a secret could end up in a log line. pino replaces them with
 * `[redacted]` before serialisation, so a careless `log.info({ req })` stays safe.
 */
export const REDACT_PATHS = [
  'secret',
  'apiKey',
  'api_key',
  'key',
  'token',
  'password',
  'authorization',
  'jwtSecret',
  'encryptionKey',
  '*.secret',
  '*.apiKey',
  '*.api_key',
  '*.token',
  '*.authorization',
  '*.jwtSecret',
  '*.encryptionKey',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["x-goog-api-key"]',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-goog-api-key"]',
  'req.headers.cookie',
  'lease.secret',
  'body.apiKey',
  'input.apiKey',
];

export interface LoggerOptions {
  level?: string;
  /** Where lines go; tests pass a capturing stream to scan every line for secrets. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'keyrack' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}

/** A logger that writes nowhere, for tests and tools that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });
