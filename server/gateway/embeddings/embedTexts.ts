import type { ResolvedModel } from '../../business/types';
import { ESTIMATED_BYTES_PER_TOKEN } from '../../business/countPromptTokens';
import type { PooledCallFailure } from '../../dispatch/pooledCall';
import { embedUpstream } from '../../providers/embeddings/embedUpstream';
import { sharedUpstreamHttp, type UpstreamHttp } from '../../providers/http/UpstreamHttp';
import { PROVIDER_SPECS } from '../../providers/registry';
import type { MeteredCalls } from '../meteredCalls';

export interface EmbedTextsRequest {
  /** As the client named it. */
  model: string;
  /** Checked at the edge: 1..MAX_EMBEDDING_INPUTS texts, none empty. */
  inputs: readonly string[];
  dimensions?: number;
  userId: string;
  signal: AbortSignal;
  requestId?: string;
  /** How long it may wait for a key when every key is busy (issue 22). */
  maxWaitMs?: number;
}

export type EmbedTextsResult =
  | {
      ok: true;
      model: ResolvedModel;
      /** One per input, in order. */
      vectors: number[][];
      usage: { inputTokens: number; estimated: boolean };
      costUsd: number;
    }
  | PooledCallFailure;

/**
 * Embeds texts with an embedding model of the catalog (issue 21), for /v1/embeddings and the
 * tRPC embeddings.create alike: through the pooled-call core (key pools, retries on another key,
 * the user's limits and budget, BYOK keys, the usage ledger at the catalog's input price).
 *
 * The budget's bound is the inputs' UTF-8 bytes (no tokenizer needs more than a token per byte)
 * at the input price; an embedding has no output tokens. Where the provider reports no token
 * count (Gemini), the usage billed and counted against the key's TPM is an estimate,
 * ESTIMATED_BYTES_PER_TOKEN bytes per token, as the gateway estimates prompts elsewhere.
 */
export function embedTexts(calls: MeteredCalls, req: EmbedTextsRequest, http: UpstreamHttp = sharedUpstreamHttp()): Promise<EmbedTextsResult> {
  let bytes = 0;
  let estimate = 0;
  for (const text of req.inputs) {
    const size = Buffer.byteLength(text, 'utf8');
    bytes += size;
    estimate += Math.max(1, Math.ceil(size / ESTIMATED_BYTES_PER_TOKEN));
  }
  const { dimensions } = req;
  return calls
    .call({
      model: req.model,
      kind: 'embedding',
      userId: req.userId,
      signal: req.signal,
      ...(req.requestId !== undefined ? { requestId: req.requestId } : {}),
      ...(req.maxWaitMs !== undefined ? { maxWaitMs: req.maxWaitMs } : {}),
      unsupported: (model) => refusalFor(model, dimensions),
      bound: { inputTokensAtMost: bytes + req.inputs.length, outputTokensAtMost: 0 },
      estimatedInputTokens: estimate,
      attempt: async ({ ctx, model }) => {
        const answer = await embedUpstream(http, model.provider, { model: model.upstreamModel, inputs: req.inputs, ...(dimensions !== undefined ? { dimensions } : {}) }, ctx);
        const usage = answer.usage ?? { inputTokens: estimate, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0 };
        return { value: { vectors: answer.vectors, estimated: answer.usage === null }, usage };
      },
    })
    .then((result): EmbedTextsResult => {
      if (!result.ok) return result;
      return {
        ok: true,
        model: result.model,
        vectors: result.value.vectors,
        usage: { inputTokens: result.usage?.inputTokens ?? estimate, estimated: result.value.estimated },
        costUsd: result.cost.actualUsd,
      };
    });
}

/** Why this model cannot take this request, before any key is leased; null when it can. */
function refusalFor(model: ResolvedModel, dimensions: number | undefined): string | { message: string; field: string } | null {
  if (!PROVIDER_SPECS[model.provider].embeddings) return `${model.id} is served by ${model.provider}, which has no embeddings API in Keyrack`;
  if (dimensions === undefined || !model.embedding) return null;
  if (!model.embedding.adjustableDimensions) return { message: `${model.id} does not support specifying dimensions (it always answers ${model.embedding.dimensions})`, field: 'dimensions' };
  if (dimensions > model.embedding.dimensions) return { message: `${model.id} has at most ${model.embedding.dimensions} dimensions`, field: 'dimensions' };
  return null;
}
