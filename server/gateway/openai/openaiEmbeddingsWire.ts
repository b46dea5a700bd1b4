import { z } from 'zod';
import { embeddingsCreateInputSchema, type EmbeddingsCreateInput } from '../../../shared/embeddings';
import { refusalOf, type WireRefusal } from './openaiWire';

/**
 * OpenAI's embeddings wire (platform.openai.com/docs/api-reference/embeddings/create) as
 * /v1/embeddings speaks it (issue 21). Every field is carried or refused with a 400 naming it, as
 * /v1/chat/completions does: unknown fields are refused, `user` is accepted and not forwarded
 * (see openaiChatRequestSchema), token-array inputs are refused (their token ids are one
 * tokenizer's, and Keyrack may serve the model from a provider with another).
 */
export const openaiEmbeddingsRequestSchema = z.strictObject({
  model: z.string({ error: 'model is required' }).min(1, 'model is required'),
  input: z.union([z.string(), z.array(z.string())], { error: 'input is a string or an array of strings' }),
  dimensions: z.number().int().positive().nullish(),
  encoding_format: z.enum(['float', 'base64'], { error: "encoding_format is 'float' or 'base64'" }).nullish(),
  /** Accepted, not forwarded: Keyrack's user is the token's subject (see openaiChatRequestSchema.user). */
  user: z.string().max(512).nullish(),
});
export type OpenAIEmbeddingsRequest = z.infer<typeof openaiEmbeddingsRequestSchema>;

const TOKEN_ARRAYS = 'input: Keyrack takes text inputs (a string or an array of strings); token arrays are not supported, since their ids belong to one tokenizer and the model may be served by a provider with another';

/** Reads a /v1/embeddings body: the wire's shape, then the shared request's rules, refused with the wire's field names. */
export function readOpenAIEmbeddingsRequest(raw: unknown): { ok: true; wire: OpenAIEmbeddingsRequest; request: EmbeddingsCreateInput } | { ok: false; refusal: WireRefusal } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, refusal: { param: 'body', message: 'body: a JSON object is expected' } };
  const input = (raw as { input?: unknown }).input;
  if (Array.isArray(input) && input.some((item) => typeof item === 'number' || Array.isArray(item))) return { ok: false, refusal: { param: 'input', message: TOKEN_ARRAYS } };
  const parsed = openaiEmbeddingsRequestSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, refusal: refusalOf(parsed.error.issues[0], (path) => path) };
  const wire = parsed.data;
  const request = embeddingsCreateInputSchema.safeParse({ model: wire.model, input: wire.input, ...(wire.dimensions != null ? { dimensions: wire.dimensions } : {}) });
  // The shared names are the wire's (model, input, dimensions): paths need no renaming.
  if (!request.success) return { ok: false, refusal: refusalOf(request.error.issues[0], (path) => path) };
  return { ok: true, wire, request: request.data };
}

/** A vector as OpenAI's `encoding_format: 'base64'`: float32 little-endian bytes, base64 (what the openai SDK decodes). */
export function base64Embedding(vector: readonly number[]): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString('base64');
}
