import { z } from 'zod';
import { startMockProvider } from './startMockProvider';

/**
 * `npm run mock-provider`: the mock on 127.0.0.1 for the demo and benchmarks.
 * MOCK_PROVIDER_PORT (default 4010), MOCK_PROVIDER_RPM_PER_KEY (default unlimited),
 * MOCK_PROVIDER_CHUNK_DELAY_MS (default 0).
 */
const envSchema = z.object({
  MOCK_PROVIDER_PORT: z.coerce.number().int().min(0).max(65_535).default(4010),
  MOCK_PROVIDER_RPM_PER_KEY: z.coerce.number().int().positive().optional(),
  MOCK_PROVIDER_CHUNK_DELAY_MS: z.coerce.number().nonnegative().default(0),
});

const parsed = envSchema.safeParse(process.env);
if (!parsed.success) {
  for (const issue of parsed.error.issues) process.stderr.write(`mock-provider: ${issue.path.join('.')}: ${issue.message}\n`);
  process.exit(1);
}
const env = parsed.data;

const mock = await startMockProvider({
  port: env.MOCK_PROVIDER_PORT,
  chunkDelayMs: env.MOCK_PROVIDER_CHUNK_DELAY_MS,
  ...(env.MOCK_PROVIDER_RPM_PER_KEY !== undefined ? { rpmPerKey: env.MOCK_PROVIDER_RPM_PER_KEY } : {}),
});
process.stdout.write(
  `mock provider listening: openai ${mock.baseUrls.openai} | anthropic ${mock.baseUrls.anthropic} | gemini ${mock.baseUrls.gemini} | control ${mock.url}/_mock/stats\n`,
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void mock.close().then(() => process.exit(0));
  });
}
