import { z } from 'zod';

/** The three wire formats the mock speaks; each lives under its own path prefix. */
export const MOCK_PROVIDERS = ['openai', 'anthropic', 'gemini'] as const;
export type MockProviderName = (typeof MOCK_PROVIDERS)[number];

const afterChunks = z.number().int().nonnegative();

/**
 * A misbehaviour the mock plays for one key. Each provider answers it in its own documented
 * shape (see the wire/ files). Stream faults (`cutStream`, `malformedSse`, `streamError`, and
 * `stall` with `afterChunks`) only fire on streaming requests; the others fire on any request.
 */
export const mockFaultSchema = z.discriminatedUnion('kind', [
  /** Bad key. 401 by default (Gemini: 400 API_KEY_INVALID); 403 = permission denied. */
  z.object({ kind: z.literal('reject'), status: z.union([z.literal(401), z.literal(403)]).optional() }),
  /**
   * Money or daily quota gone: OpenAI 429 insufficient_quota; Gemini 429 with a PerDay quotaId;
   * Anthropic 400 "credit balance is too low" (or 402 billing_error with `status: 402`).
   */
  z.object({ kind: z.literal('quota'), status: z.union([z.literal(400), z.literal(402)]).optional() }),
  /** 429 in the provider's rate-limit shape, saying to come back in `retryAfterSeconds` (default 1). */
  z.object({ kind: z.literal('rateLimit'), retryAfterSeconds: z.number().nonnegative().optional() }),
  /** 5xx (default 500) in the provider's server-error shape. */
  z.object({ kind: z.literal('serverError'), status: z.number().int().min(500).max(599).optional() }),
  /** Anthropic 529 overloaded_error; OpenAI and Gemini 503. */
  z.object({ kind: z.literal('overloaded') }),
  /** Accept and never answer until the client goes away (after `afterChunks` deltas, if given). */
  z.object({ kind: z.literal('stall'), afterChunks: afterChunks.optional() }),
  /** Send `afterChunks` deltas, then destroy the socket. */
  z.object({ kind: z.literal('cutStream'), afterChunks }),
  /** After `afterChunks` deltas (default 0), a data line whose JSON does not parse; the stream then goes on. */
  z.object({ kind: z.literal('malformedSse'), afterChunks: afterChunks.optional() }),
  /** After `afterChunks` deltas (default 0), the provider's in-stream error event, then the end. */
  z.object({
    kind: z.literal('streamError'),
    afterChunks: afterChunks.optional(),
    error: z.enum(['overloaded', 'serverError', 'rateLimit']).optional(),
  }),
]);
export type MockFault = z.infer<typeof mockFaultSchema>;

/** How long a fault lasts: once by default, `times` requests, or until cleared (`sticky`). */
export const mockFaultOptionsSchema = z.object({
  provider: z.enum(MOCK_PROVIDERS).optional(),
  sticky: z.boolean().optional(),
  times: z.number().int().positive().optional(),
});
export type MockFaultOptions = z.infer<typeof mockFaultOptionsSchema>;

const STREAM_ONLY = new Set<MockFault['kind']>(['cutStream', 'malformedSse', 'streamError']);

export function isStreamFault(fault: MockFault): boolean {
  return STREAM_ONLY.has(fault.kind) || (fault.kind === 'stall' && fault.afterChunks !== undefined);
}
