import { readFileSync } from 'node:fs';
import { businessConfigSchema, type ModelEntry } from '../../shared/business';
import type { ModelCatalog, ResolvedModel } from '../business/types';

/**
 * A read-only catalog of server/business/defaults.json, for when no business config is wired
 * (tests, and until the store-backed BusinessConfig is). Active models only.
 */
export function defaultsCatalog(models?: ModelEntry[]): ModelCatalog {
  const entries =
    models ?? businessConfigSchema.parse(JSON.parse(readFileSync(new URL('../business/defaults.json', import.meta.url), 'utf8'))).models;
  const active = entries.filter((m) => m.is_active).map(toResolved);
  return {
    async resolve(name) {
      const slash = name.indexOf('/');
      if (slash < 0) return active.find((m) => m.id === name) ?? null;
      const provider = name.slice(0, slash);
      const model = name.slice(slash + 1);
      return active.find((m) => m.provider === provider && (m.id === model || m.upstreamModel === model)) ?? null;
    },
    async list() {
      return active;
    },
  };
}

function toResolved(m: ModelEntry): ResolvedModel {
  return {
    id: m.id,
    provider: m.provider,
    upstreamModel: m.upstream_model ?? m.id,
    displayName: m.display_name,
    inputPrice: m.input_price,
    outputPrice: m.output_price,
    fallbacks: m.fallbacks,
  };
}
