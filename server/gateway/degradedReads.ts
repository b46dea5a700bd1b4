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
  // Wrappers are made once per target object and method, not on every property read: these
  // reads run several times per request (issue #8's profile).
  let wrappersOf: T | null = null;
  let wrappers = new Map<PropertyKey, unknown>();

  const wrap = (current: T, property: PropertyKey, method: (...a: unknown[]) => Promise<unknown>, fallback: (...a: unknown[]) => Promise<unknown>) =>
    async (...args: unknown[]) => {
      const key = cacheKey(property, args);
      try {
        const result = await method.apply(current, args);
        warned = false;
        // Most reads answer the same snapshot object as last time: nothing to update then.
        if (cache && cache.get(key) !== result) {
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

  return new Proxy(target(), {
    get(_ignored, property) {
      const current = target();
      const value = Reflect.get(current, property, current) as unknown;
      if (typeof value !== 'function') return value;
      if (wrappersOf !== current) {
        wrappersOf = current;
        wrappers = new Map();
      }
      let wrapped = wrappers.get(property);
      if (wrapped === undefined) {
        const fallback = (fallbacks as Record<PropertyKey, ((...args: unknown[]) => Promise<unknown>) | undefined>)[property];
        wrapped = fallback
          ? wrap(current, property, value as (...a: unknown[]) => Promise<unknown>, fallback)
          : (value as (...args: unknown[]) => unknown).bind(current);
        wrappers.set(property, wrapped);
      }
      return wrapped;
    },
  });
}

/** Method and arguments as one string; plain strings (ids) without JSON.stringify. */
function cacheKey(property: PropertyKey, args: unknown[]): string {
  if (args.length === 0) return String(property);
  if (args.length === 1 && typeof args[0] === 'string') return `${String(property)}:"${args[0]}`;
  return `${String(property)}:${JSON.stringify(args)}`;
}
