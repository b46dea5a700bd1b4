import type { TokenUsage } from '../../../shared';

/** One embeddings call as the providers take it (issue 21): already resolved to the upstream model. */
export interface UpstreamEmbeddingRequest {
  /** The provider's own model id (`text-embedding-3-small`, `gemini-embedding-001`). */
  model: string;
  /** At least one text, none empty (checked at the edge). */
  inputs: readonly string[];
  /** Fewer dimensions than the model's own; the provider's own field name comes from the registry. */
  dimensions?: number;
}

export interface UpstreamEmbeddings {
  /** One vector per input, in input order. */
  vectors: number[][];
  /** As the provider reported it; null when it reports none (Gemini). */
  usage: TokenUsage | null;
}
