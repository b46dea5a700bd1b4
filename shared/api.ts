import { z } from 'zod';
import { chatRequestSchema, costSchema, finishReasonSchema, streamEventSchema, tokenUsageSchema } from './chat';
import { modelCapabilitiesSchema, modelKindSchema } from './business';
import { poolStatusSchema } from './pool';
import { providerIdSchema } from './providers';

/**
 * The wire of every gateway procedure, input and output, in one place: the server validates
 * with these schemas and the client infers its types from the router built on them.
 * Procedure names are a contract (issue #4): chat.start, chat.stream, chat.complete,
 * models.list, pool.status, pool.watch, pool.setKeyEnabled.
 */

export const userRoleSchema = z.enum(['user', 'admin']);
export type UserRole = z.infer<typeof userRoleSchema>;

/** A user id as it appears in a token's `sub`. */
/** A user id (a token's `sub`): printable, no surrounding white space, so ' alice' and 'alice' cannot be two users. */
export const userIdSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\s\p{Cc}](?:[^\p{Cc}]*[^\s\p{Cc}])?$/u, 'a user id is printable text without leading or trailing white space');

// --- chat -----------------------------------------------------------------------------------

export const chatStartInputSchema = chatRequestSchema;

/** Ids of a stream's events: "1", "2", ... in order, so "resume after N" is well defined. */
export const streamEventIdSchema = z.string().regex(/^\d{1,9}$/, 'an event id as sent by chat.stream');

/** An event of a stream with its id, as chat.stream sends it (`tracked(id, event)`). */
export const trackedStreamEventSchema = z.object({ id: streamEventIdSchema, event: streamEventSchema });

/** At most this many of a stream's first events come back with chat.start. */
export const CHAT_START_EVENTS_MAX = 64;

export const chatStartOutputSchema = z.object({
  /** Unguessable (random UUID) and bound to the user who started it. */
  streamId: z.string().uuid(),
  /**
   * The events the stream already held when chat.start answered, from id "1" on (it answers at
   * the first one: usually `start` and the first text of the same upstream read). A client
   * shows them at once and opens chat.stream with lastEventId = the last one's id, so the first
   * token needs no second round trip.
   */
  events: z.array(trackedStreamEventSchema).max(CHAT_START_EVENTS_MAX),
});
export type ChatStartOutput = z.infer<typeof chatStartOutputSchema>;

export const chatStreamInputSchema = z.object({
  streamId: z.string().uuid(),
  /** The id of the last event received; the stream resumes with the next one. */
  lastEventId: streamEventIdSchema.nullish(),
});
export type ChatStreamInput = z.infer<typeof chatStreamInputSchema>;

/** Each chat.stream item is `tracked(id, event)`: the client sees `{ id, data: StreamEvent }`. */
export const chatStreamEventSchema = streamEventSchema;

export const chatCompleteInputSchema = chatRequestSchema;

/**
 * A tool call of a whole answer, assembled from its `tool_call_delta` events. Plain strings (not
 * chat.ts's stricter request schema): an answer is reported as the provider gave it, and a
 * malformed call is the caller's to see, not a 500.
 */
export const answerToolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.string() });

export const chatCompleteOutputSchema = z.object({
  text: z.string(),
  /** The calls the model made, in index order; empty when it made none (finishReason `tool_calls` when it did). */
  toolCalls: z.array(answerToolCallSchema),
  /** Thinking text, apart from the answer; '' when the model showed none. */
  reasoning: z.string(),
  provider: providerIdSchema,
  model: z.string(),
  finishReason: finishReasonSchema,
  usage: tokenUsageSchema.nullable(),
  cost: costSchema.optional(),
});
export type ChatCompleteOutput = z.infer<typeof chatCompleteOutputSchema>;

// --- models ---------------------------------------------------------------------------------

export const modelInfoSchema = z.object({
  id: z.string(),
  provider: providerIdSchema,
  displayName: z.string(),
  /** USD per 1M input tokens. */
  inputPrice: z.number().nonnegative(),
  /** USD per 1M output tokens. */
  outputPrice: z.number().nonnegative(),
  /** What it takes beyond plain text (issue 20): a UI offers image upload only with vision, and so on. */
  capabilities: modelCapabilitiesSchema,
  /** Issue 21: `chat` models answer chat.*, `embedding` models embeddings.create (and /v1/embeddings). */
  kind: modelKindSchema,
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;
export const modelsListOutputSchema = z.array(modelInfoSchema);

// --- pool (admin) ---------------------------------------------------------------------------

export const poolStatusOutputSchema = poolStatusSchema;

export const poolSetKeyEnabledInputSchema = z.object({
  provider: providerIdSchema,
  fingerprint: z.string().min(1).max(200),
  enabled: z.boolean(),
});
export type PoolSetKeyEnabledInput = z.infer<typeof poolSetKeyEnabledInputSchema>;
export const poolSetKeyEnabledOutputSchema = z.object({ ok: z.literal(true) });

// --- dev (demo mode only) -------------------------------------------------------------------

/** `POST /dev/token` body: exists only in demo mode without JWT_SECRET, for the demo's login screen. */
export const devTokenInputSchema = z.object({
  sub: userIdSchema,
  role: userRoleSchema.default('user'),
});
export const devTokenOutputSchema = z.object({ token: z.string() });

// --- errors ---------------------------------------------------------------------------------

/**
 * What the gateway adds to a tRPC error's `data`: the gateway's own code, when to retry, and
 * zod's issues for invalid input.
 */
export interface GatewayErrorData {
  gatewayCode?: string;
  retryAfterMs?: number;
  zodIssues?: unknown[];
  requestId?: string;
}
