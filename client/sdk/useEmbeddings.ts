import { trpc } from './trpc';
import type { RouterInputs, RouterOutputs } from './types';

/** What embeddings.create takes: `{ model, input: string | string[], dimensions? }` (issue 21). */
export type EmbeddingsInput = RouterInputs['embeddings']['create'];
/** What it answers: `{ model, embeddings: number[][], usage: { inputTokens, estimated }, costUsd }`. */
export type EmbeddingsResult = RouterOutputs['embeddings']['create'];

/**
 * Embeds texts with an embedding model of the catalog (`useModels()` entries of kind
 * `embedding`), through the gateway's key pools and the caller's budget. A TanStack Query
 * mutation: `const embed = useEmbeddings(); const { embeddings } = await embed.mutateAsync({ model, input })`.
 * Outside React: `client.embeddings.create.mutate({ model, input })` on createKeyrackClient's client.
 */
export function useEmbeddings() {
  return trpc.embeddings.create.useMutation();
}
