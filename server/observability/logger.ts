import pino, { type Logger, type DestinationStream } from 'pino';
import { scrubSecrets } from './scrubSecrets';

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
      formatters: { level: (label) => ({ level: label }), log: scrubFreeText },
      // The message string itself (format arguments included) is free text too.
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg)) as Parameters<typeof method>);
        },
      },
    },
    options.destination,
  );
}

/** Fields that carry free text (error messages, upstream bodies) are scrubbed of key-shaped substrings. */
const FREE_TEXT_FIELDS = ['err', 'error', 'message', 'reason', 'detail', 'body', 'providerCode', 'param'] as const;

function scrubFreeText(fields: Record<string, unknown>): Record<string, unknown> {
  let out = fields;
  for (const name of FREE_TEXT_FIELDS) {
    const value = fields[name];
    if (value instanceof Error) {
      out = { ...out, [name]: scrubbedError(value) };
      continue;
    }
    if (typeof value !== 'string') continue;
    const clean = scrubSecrets(value);
    if (clean !== value) out = { ...out, [name]: clean };
  }
  return out;
}

/** A copy of the error with its message scrubbed; the stack keeps its frames (its first line repeats the message). */
function scrubbedError(error: Error): Error {
  const copy = new Error(scrubSecrets(error.message));
  copy.name = error.name;
  const frames = error.stack?.split('\n').slice(1).join('\n');
  copy.stack = `${error.name}: ${copy.message}${frames ? `\n${frames}` : ''}`;
  return copy;
}

/** A logger that writes nowhere, for tests and tools that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * `logger.child(bindings)`, made on first use. Most requests log nothing, and a pino child with
 * redaction costs ~2 µs to make: two per request were ~1% of the gateway's time (issue #8).
 */
export function lazyChild(logger: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  return new Proxy(logger, {
    get(_parent, property) {
      child ??= logger.child(bindings);
      const value = Reflect.get(child, property, child) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(child) : value;
    },
  });
}
