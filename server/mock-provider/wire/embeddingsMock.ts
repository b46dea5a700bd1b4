import { createHash } from 'node:crypto';
import { z } from 'zod';
import { jsonReply, type MockReply } from '../mockDialect';

/**
 * Embeddings as the mock answers them (issue 21), in two public wires:
 * - OpenAI's `POST /v1/embeddings` (platform.openai.com/docs/api-reference/embeddings), which
 *   Mistral copies (`output_dimension` instead of `dimensions`): `{ object: 'list', data: [{
 *   object: 'embedding', index, embedding }], model, usage: { prompt_tokens, total_tokens } }`,
 *   `embedding` a float array or, with `encoding_format: 'base64'`, the float32 little-endian
 *   bytes in base64 (what the openai SDK decodes);
 * - Gemini's `models/{model}:batchEmbedContents` (`{ requests: [{ model, content: { parts: [{
 *   text }] }, outputDimensionality? }] }` -> `{ embeddings: [{ values }] }`, no usage) and
 *   `:embedContent` (`{ content, outputDimensionality? }` -> `{ embedding: { values } }`).
 * Vectors are deterministic: seeded from a hash of the model and the text, unit length, the
 * model's dimensions or the ones asked for (a shortened vector is the full one cut and
 * renormalised, as OpenAI documents for text-embedding-3).
 */

/** Output dimensions of the models the mock knows; any other model gets DEFAULT_DIMENSIONS. */
export const MOCK_EMBEDDING_DIMENSIONS: Readonly<Record<string, number>> = {
  'text-embedding-3-small': 1536,
  'text-embedding-3-large': 3072,
  'text-embedding-ada-002': 1536,
  'mistral-embed': 1024,
  'gemini-embedding-001': 3072,
};
const DEFAULT_DIMENSIONS = 256;
/** Models whose output size cannot be chosen (OpenAI: "This model does not support specifying dimensions."). */
const FIXED_DIMENSIONS = new Set(['text-embedding-ada-002', 'mistral-embed']);
/** OpenAI's per-request limit. */
const MAX_INPUTS = 2048;
/** Gemini's batchEmbedContents limit. */
const MAX_GEMINI_BATCH = 100;

/** A unit-length vector seeded from the model and the text (xorshift128 over a SHA-256 seed). */
export function mockEmbedding(model: string, text: string, dimensions: number): Float32Array {
  const full = MOCK_EMBEDDING_DIMENSIONS[model] ?? DEFAULT_DIMENSIONS;
  const seed = createHash('sha256').update(model).update('\0').update(text).digest();
  let [a, b, c, d] = [seed.readUInt32LE(0) | 1, seed.readUInt32LE(4), seed.readUInt32LE(8), seed.readUInt32LE(12)];
  const raw = new Float64Array(full);
  for (let i = 0; i < full; i++) {
    let t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = (d ^ (d >>> 19) ^ t ^ (t >>> 8)) >>> 0;
    t = d / 0x1_0000_0000;
    raw[i] = t * 2 - 1;
  }
  const size = Math.min(dimensions, full);
  let norm = 0;
  for (let i = 0; i < size; i++) norm += raw[i]! * raw[i]!;
  norm = Math.sqrt(norm) || 1;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = raw[i]! / norm;
  return out;
}

/** Float32 little-endian bytes in base64, OpenAI's `encoding_format: 'base64'`. */
export function float32Base64(vector: Float32Array): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString('base64');
}

/** What the mock counts a text as: a token per 4 characters, at least one (as its chat answers count prompts). */
function tokensOf(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

const openaiRequestSchema = z.object({
  model: z.string({ error: 'you must provide a model parameter' }).min(1, 'you must provide a model parameter'),
  input: z.union([z.string(), z.array(z.string()), z.array(z.number().int()), z.array(z.array(z.number().int()))], { error: "'input' is a required property" }),
  dimensions: z.number().int().positive().nullish(),
  output_dimension: z.number().int().positive().nullish(),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  user: z.string().nullish(),
});

function openaiError(message: string, param: string | null): MockReply {
  return jsonReply(400, { error: { message, type: 'invalid_request_error', param, code: null } });
}

/** OpenAI's (and Mistral's) embeddings answer, or its 400. */
export function openaiEmbeddingsReply(body: unknown): MockReply {
  const parsed = openaiRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return openaiError(issue?.message ?? 'Invalid request', issue?.path[0] === undefined ? null : String(issue.path[0]));
  }
  const { model, input, encoding_format: format } = parsed.data;
  const texts = typeof input === 'string' ? [input] : input.map((item) => (typeof item === 'number' || Array.isArray(item) ? JSON.stringify(item) : item));
  if (texts.length === 0 || texts.length > MAX_INPUTS) return openaiError(`'input' must hold between 1 and ${MAX_INPUTS} items`, 'input');
  if (texts.some((t) => t === '')) return openaiError("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", 'input');
  const asked = parsed.data.dimensions ?? parsed.data.output_dimension ?? undefined;
  if (asked !== undefined && FIXED_DIMENSIONS.has(model)) return openaiError('This model does not support specifying dimensions.', parsed.data.dimensions ? 'dimensions' : 'output_dimension');
  const full = MOCK_EMBEDDING_DIMENSIONS[model] ?? DEFAULT_DIMENSIONS;
  if (asked !== undefined && asked > full) return openaiError(`dimensions must be at most ${full} for ${model}`, 'dimensions');
  const dims = asked ?? full;
  let tokens = 0;
  const data = texts.map((text, index) => {
    tokens += tokensOf(text);
    const vector = mockEmbedding(model, text, dims);
    return { object: 'embedding', index, embedding: format === 'base64' ? float32Base64(vector) : Array.from(vector) };
  });
  return jsonReply(200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

const geminiContentSchema = z.object({ parts: z.array(z.object({ text: z.string() })).min(1), role: z.string().optional() });
const geminiEmbedSchema = z.object({
  model: z.string().optional(),
  content: geminiContentSchema,
  outputDimensionality: z.number().int().positive().optional(),
  taskType: z.string().optional(),
  title: z.string().optional(),
});
const geminiBatchSchema = z.object({ requests: z.array(geminiEmbedSchema).min(1) });

function geminiError(message: string): MockReply {
  return jsonReply(400, { error: { code: 400, message, status: 'INVALID_ARGUMENT' } });
}

/** Gemini's `:batchEmbedContents` (batch) or `:embedContent` answer for `model` (the path's), or its 400. */
export function geminiEmbedReply(body: unknown, model: string, batch: boolean): MockReply {
  const parsed = batch ? geminiBatchSchema.safeParse(body) : geminiEmbedSchema.safeParse(body);
  if (!parsed.success) return geminiError(`Invalid JSON payload received. ${parsed.error.issues[0]?.message ?? ''}`.trim());
  const requests = batch ? (parsed.data as z.infer<typeof geminiBatchSchema>).requests : [parsed.data as z.infer<typeof geminiEmbedSchema>];
  if (requests.length > MAX_GEMINI_BATCH) return geminiError(`* BatchEmbedContentsRequest.requests: at most ${MAX_GEMINI_BATCH} requests can be in one batch`);
  const full = MOCK_EMBEDDING_DIMENSIONS[model] ?? DEFAULT_DIMENSIONS;
  const embeddings: { values: number[] }[] = [];
  for (const [i, request] of requests.entries()) {
    if (batch && request.model !== `models/${model}`) return geminiError(`* BatchEmbedContentsRequest.requests[${i}].model: model must be models/${model}, the batch's`);
    const text = request.content.parts.map((p) => p.text).join('');
    if (text === '') return geminiError('* EmbedContentRequest.content: contents must not be empty');
    const dims = request.outputDimensionality ?? full;
    if (dims > full) return geminiError(`* EmbedContentRequest.output_dimensionality: must be at most ${full}`);
    embeddings.push({ values: Array.from(mockEmbedding(model, text, dims)) });
  }
  return jsonReply(200, batch ? { embeddings } : { embedding: embeddings[0] });
}
