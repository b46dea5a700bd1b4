import type { ProviderId } from '../../shared';
import type { ModelCapabilities, ModelKind } from '../../shared/business';

/** A model as the catalog resolves it: which provider serves it, under which upstream id, at what price. */
export interface ResolvedModel {
  /** Catalog id, e.g. 'gpt-4o'. */
  id: string;
  provider: ProviderId;
  /** The provider's own model id. */
  upstreamModel: string;
  displayName: string;
  /** USD per 1M input tokens. */
  inputPrice: number;
  /** USD per 1M output tokens. */
  outputPrice: number;
  /** Catalog ids to try, in order, when this model's provider has no usable key. */
  fallbacks: readonly string[];
  /** What requests it takes beyond plain text (tools, images, JSON output, reasoning). */
  capabilities: Readonly<ModelCapabilities>;
  /** Absent: 'chat' (catalogs built in code before issue 21). The endpoint that may use it. */
  kind?: ModelKind;
  /** Embedding models: the vectors' size and whether `dimensions` may ask for fewer. */
  embedding?: Readonly<{ dimensions: number; adjustableDimensions: boolean }>;
}

export interface ModelCatalog {
  /** A plain id, or 'provider/model'. Null when unknown. */
  resolve(name: string): Promise<ResolvedModel | null>;
  list(): Promise<ResolvedModel[]>;
}
