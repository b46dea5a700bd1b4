import { geminiModelPath } from '../gemini/convertToGeminiRequest';
import { safeParseJson } from '../http/parseJson';
import { postUpstream } from '../http/postUpstream';
import { readAnswerBody, type UpstreamHttp } from '../http/UpstreamHttp';
import { ProviderError } from '../ProviderError';
import { PROVIDER_SPECS, type ProviderSpec } from '../registry';
import type { ProviderId } from '../../../shared';
import type { AdapterContext } from '../types';
import { GEMINI_EMBED_BATCH, geminiBatchEmbedAnswerSchema } from './geminiEmbeddingsApi';
import { openaiEmbeddingsAnswerSchema } from './openaiEmbeddingsApi';
import type { UpstreamEmbeddingRequest, UpstreamEmbeddings } from './types';

/**
 * One embeddings call on one key (issue 21), in the provider's wire: OpenAI-compatible
 * `POST {base}/embeddings`, or Gemini's `batchEmbedContents`. Throws the provider's classified
 * ProviderError (postUpstream: the same classifiers and retry-after reading as chat), or a
 * transient one for an answer that does not read (another key may answer properly).
 */
export async function embedUpstream(http: UpstreamHttp, provider: ProviderId, req: UpstreamEmbeddingRequest, ctx: AdapterContext): Promise<UpstreamEmbeddings> {
  const spec = PROVIDER_SPECS[provider];
  if (!spec.embeddings) throw new ProviderError({ kind: 'bad_request', message: `${provider} has no embeddings API`, param: 'model' });
  return spec.wireFormat === 'gemini' ? embedGemini(http, spec, req, ctx) : embedOpenAICompatible(http, spec, req, ctx);
}

async function embedOpenAICompatible(http: UpstreamHttp, spec: ProviderSpec, req: UpstreamEmbeddingRequest, ctx: AdapterContext): Promise<UpstreamEmbeddings> {
  const body: Record<string, unknown> = { model: req.model, input: req.inputs, encoding_format: 'float' };
  if (req.dimensions !== undefined) body[spec.embeddings!.dimensionsField] = req.dimensions;
  const response = await postUpstream(http, { provider: spec.id, url: `${ctx.baseUrl}/embeddings`, headers: { authorization: `Bearer ${ctx.apiKey}` }, body: JSON.stringify(body), ctx });
  const parsed = safeParseJson(await readAnswerBody(response, ctx.apiKey), openaiEmbeddingsAnswerSchema);
  if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `${spec.id}: unreadable embeddings answer (${parsed.error})` });
  const vectors: number[][] = new Array(req.inputs.length);
  for (const item of parsed.value.data) if (item.index < vectors.length) vectors[item.index] = item.embedding;
  if (parsed.value.data.length !== req.inputs.length || vectors.some((v) => v === undefined)) {
    throw new ProviderError({ kind: 'transient', message: `${spec.id}: ${parsed.value.data.length} embeddings for ${req.inputs.length} inputs`, providerCode: 'truncated' });
  }
  const reported = parsed.value.usage;
  return { vectors, usage: reported ? { inputTokens: reported.prompt_tokens, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0 } : null };
}

/**
 * Gemini, in batches of GEMINI_EMBED_BATCH on the same key (its limit per call; OpenAI's 2,048
 * inputs take up to 21 calls). Gemini reports no token count for embeddings: `usage` is null and
 * the caller bills an estimate.
 */
async function embedGemini(http: UpstreamHttp, spec: ProviderSpec, req: UpstreamEmbeddingRequest, ctx: AdapterContext): Promise<UpstreamEmbeddings> {
  const path = geminiModelPath(req.model);
  const name = `models/${decodeURIComponent(path)}`;
  const vectors: number[][] = [];
  for (let start = 0; start < req.inputs.length; start += GEMINI_EMBED_BATCH) {
    const batch = req.inputs.slice(start, start + GEMINI_EMBED_BATCH);
    const requests = batch.map((text) => ({
      model: name,
      content: { parts: [{ text }] },
      ...(req.dimensions !== undefined ? { outputDimensionality: req.dimensions } : {}),
    }));
    // The key in a header, never the query string (it would land in access logs), as the chat adapter does.
    const response = await postUpstream(http, { provider: spec.id, url: `${ctx.baseUrl}/v1beta/models/${path}:batchEmbedContents`, headers: { 'x-goog-api-key': ctx.apiKey }, body: JSON.stringify({ requests }), ctx });
    const parsed = safeParseJson(await readAnswerBody(response, ctx.apiKey), geminiBatchEmbedAnswerSchema);
    if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `${spec.id}: unreadable embeddings answer (${parsed.error})` });
    if (parsed.value.embeddings.length !== batch.length) {
      throw new ProviderError({ kind: 'transient', message: `${spec.id}: ${parsed.value.embeddings.length} embeddings for ${batch.length} inputs`, providerCode: 'truncated' });
    }
    for (const e of parsed.value.embeddings) vectors.push(e.values);
  }
  // Gemini reports no token count for embeddings: the caller estimates it.
  return { vectors, usage: null };
}
