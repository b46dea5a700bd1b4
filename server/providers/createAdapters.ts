import { PROVIDER_IDS, type ProviderId } from '../../shared';
import { AnthropicAdapter } from './anthropic/AnthropicAdapter';
import { GeminiAdapter } from './gemini/GeminiAdapter';
import { sharedUpstreamHttp, type UpstreamHttp } from './http/UpstreamHttp';
import { OpenAICompatibleAdapter } from './openai-compatible/OpenAICompatibleAdapter';
import { PROVIDER_SPECS } from './registry';
import type { ProviderAdapter } from './types';

export type ProviderAdapters = Record<ProviderId, ProviderAdapter>;

/** One adapter per provider, chosen by the provider's wire format, all sharing one connection pool. */
export function createAdapters(http: UpstreamHttp = sharedUpstreamHttp()): ProviderAdapters {
  const anthropic = new AnthropicAdapter(http);
  const gemini = new GeminiAdapter(http);
  const entries = PROVIDER_IDS.map((id): [ProviderId, ProviderAdapter] => {
    const spec = PROVIDER_SPECS[id];
    switch (spec.wireFormat) {
      case 'anthropic':
        return [id, anthropic];
      case 'gemini':
        return [id, gemini];
      case 'openai':
        return [id, new OpenAICompatibleAdapter(spec, http)];
    }
  });
  return Object.fromEntries(entries) as ProviderAdapters;
}
