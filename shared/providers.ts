import { z } from 'zod';

/**
 * Every upstream Keyrack can route to. The id is what users and the store see;
 * the env prefix is what operators write in `.env` (`<PREFIX>_API_KEY_1`, ...).
 */
export const PROVIDERS = [
  { id: 'openai', envPrefix: 'OPENAI', displayName: 'OpenAI' },
  { id: 'anthropic', envPrefix: 'ANTHROPIC', displayName: 'Anthropic' },
  { id: 'google', envPrefix: 'GOOGLE_AI', displayName: 'Google Gemini' },
  { id: 'mistral', envPrefix: 'MISTRAL', displayName: 'Mistral' },
  { id: 'perplexity', envPrefix: 'PERPLEXITY', displayName: 'Perplexity' },
  { id: 'deepseek', envPrefix: 'DEEPSEEK', displayName: 'DeepSeek' },
  { id: 'groq', envPrefix: 'GROQ', displayName: 'Groq' },
  { id: 'xai', envPrefix: 'XAI', displayName: 'xAI' },
  { id: 'kimi', envPrefix: 'KIMI', displayName: 'Kimi (Moonshot)' },
] as const;

export type ProviderId = (typeof PROVIDERS)[number]['id'];

export const PROVIDER_IDS = PROVIDERS.map((p) => p.id) as [ProviderId, ...ProviderId[]];

export const providerIdSchema = z.enum(PROVIDER_IDS);

export const ROTATION_STRATEGIES = ['round-robin', 'least-loaded'] as const;
export type RotationStrategy = (typeof ROTATION_STRATEGIES)[number];
