import type { Logger } from '../observability/logger';

type AnyMethod = (...args: never[]) => Promise<unknown>;
type Methods<T> = { [K in keyof T]: T[K] extends AnyMethod ? K : never }[keyof T];

export interface DegradedReadsOptions<T> {
  /** The object to call; read on every call so the composition root can swap it. */
  target: () => T;
  /** Per read method: the answer when the call fails (Redis away). Other members pass through. */
  fallbacks: { [K in Methods<T>]?: T[K] };
  /** Keep the last good answer per method and arguments and prefer it over the fallback. Default true. */
  cacheLastGood?: boolean;
  /** Names the object in the warning. */
  name: string;
  logger: Logger;
}

const MAX_CACHED = 1_000;

/**
 * Reads that survive a store outage (issue #7, "requests keep flowing"): the hot path's reads
 * of the catalog, settings and BYOK records fall back to the last good answer, else to a safe
 * default (catalog: defaults.json; BYOK: no own keys, so the shared pool serves), instead of
 * failing the chat. Writes are untouched and still fail loudly.
 */
export function withDegradedReads<T extends object>(options: DegradedReadsOptions<T>): T {
  const { target, fallbacks, logger, name } = options;
  const cache = options.cacheLastGood === false ? null : new Map<string, unknown>();
  let warned = false;
  return new Proxy(target(), {
    get(_ignored, property) {
      const current = target();
      const value = Reflect.get(current, property, current) as unknown;
      if (typeof value !== 'function') return value;
      const fallback = (fallbacks as Record<PropertyKey, ((...args: unknown[]) => Promise<unknown>) | undefined>)[property];
      if (!fallback) return (value as (...args: unknown[]) => unknown).bind(current);
      return async (...args: unknown[]) => {
        const key = `${String(property)}:${JSON.stringify(args)}`;
        try {
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(current, args);
          warned = false;
          if (cache) {
            cache.delete(key);
            cache.set(key, result);
            if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value as string);
          }
          return result;
        } catch (error) {
          if (!warned) {
            warned = true;
            logger.warn({ store: name, err: error instanceof Error ? error.name : 'error' }, 'store read failed; serving the last good answer or a safe default');
          }
          if (cache?.has(key)) return cache.get(key);
          return fallback(...args);
        }
      };
    },
  });
}
