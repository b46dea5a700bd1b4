import type { z } from 'zod';

export type SafeParseJsonResult<T> = { success: true; value: T } | { success: false; error: string };

/**
 * The one way untrusted JSON from a provider is read: never throws, and a failure says what was
 * wrong without echoing the text (which may hold anything, including an echoed key).
 */
export function safeParseJson<S extends z.ZodType>(text: string, schema: S): SafeParseJsonResult<z.infer<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { success: false, error: 'not JSON' };
  }
  return safeParseValue(raw, schema);
}

/** The schema half of safeParseJson, for a caller that has parsed the JSON already (a fast path that fell back). */
export function safeParseValue<S extends z.ZodType>(raw: unknown, schema: S): SafeParseJsonResult<z.infer<S>> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { success: true, value: parsed.data };
  const paths = parsed.error.issues.slice(0, 3).map((i) => i.path.join('.') || '(root)');
  return { success: false, error: `unexpected shape at ${paths.join(', ')}` };
}
