import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { convertOpenAIUsage } from '../../server/providers/openai-compatible/convertOpenAIUsage';
import { openaiChunkSchema, openaiCompletionSchema } from '../../server/providers/openai-compatible/openaiChatApi';
import { plainAnswer, plainDeltaChunk } from '../../server/providers/openai-compatible/plainShapes';

// Values of every type a field might carry, well-formed or not.
const anyValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.string({ maxLength: 8 }),
  fc.integer({ min: -3, max: 1_000 }),
  fc.double({ noNaN: false }),
  fc.constant(Number.MAX_SAFE_INTEGER + 2),
  fc.boolean(),
  fc.constant([]),
  fc.constant({}),
);
const count = fc.oneof(fc.nat(100_000), anyValue);
const usage = fc.oneof(
  anyValue,
  fc.record(
    {
      prompt_tokens: count,
      completion_tokens: count,
      total_tokens: count,
      prompt_tokens_details: fc.oneof(anyValue, fc.record({ cached_tokens: count, audio_tokens: count }, { requiredKeys: [] })),
      completion_tokens_details: fc.oneof(anyValue, fc.record({ reasoning_tokens: count }, { requiredKeys: [] })),
      prompt_cache_hit_tokens: count,
      cached_tokens: count,
    },
    { requiredKeys: [] },
  ),
);
const text = fc.oneof(fc.string({ maxLength: 12 }), anyValue);
const choice = (body: 'message' | 'delta') =>
  fc.oneof(
    anyValue,
    fc.record(
      {
        index: fc.constant(0),
        [body]: fc.oneof(anyValue, fc.record({ role: fc.constant('assistant'), content: text }, { requiredKeys: [] })),
        finish_reason: fc.oneof(fc.constantFrom('stop', 'length', 'tool_calls'), anyValue),
        usage: fc.oneof(fc.constant(undefined), fc.constant(null), usage),
      },
      { requiredKeys: [] },
    ),
  );
const answerOf = (body: 'message' | 'delta') =>
  fc.record(
    {
      id: fc.constant('chatcmpl-1'),
      choices: fc.oneof(anyValue, fc.array(choice(body), { minLength: 0, maxLength: 2 })),
      usage: fc.oneof(fc.constant(undefined), fc.constant(null), usage),
      x_groq: fc.oneof(fc.constant(undefined), fc.constant(null), fc.record({ usage })),
      error: fc.oneof(fc.constant(undefined), fc.constant(null), fc.string({ maxLength: 5 })),
    },
    { requiredKeys: [] },
  );

/** What the adapter reads from a one-piece answer: the first choice's text and finish, and the usage. */
function readingOf(answer: { choices?: { message?: { content?: string | null } | null; finish_reason?: string | null }[] | null; usage?: unknown }) {
  const first = answer.choices?.[0];
  return {
    text: first?.message?.content ?? null,
    finish: first?.finish_reason ?? null,
    usage: answer.usage ? convertOpenAIUsage(answer.usage as Parameters<typeof convertOpenAIUsage>[0]) : null,
  };
}

/**
 * Over generated bodies: whatever `fastPath` accepts, `schema` accepts too, and `reading` finds the
 * same in both. Fails when the generator never reaches the fast path (a vacuous pass).
 */
function checkAgainstSchema<P, S>(
  body: fc.Arbitrary<Record<string, unknown>>,
  fastPath: (raw: unknown) => P | undefined,
  schema: { safeParse(raw: unknown): { success: boolean; data?: S } },
  reading: { fast: (plain: P) => unknown; parsed: (data: S) => unknown },
): void {
  let accepted = 0;
  fc.assert(
    fc.property(body, (raw) => {
      const plain = fastPath(raw);
      if (!plain) return;
      accepted += 1;
      const parsed = schema.safeParse(raw);
      expect(parsed.success).toBe(true);
      expect(reading.fast(plain)).toEqual(reading.parsed(parsed.data!));
    }),
    { numRuns: 3_000 },
  );
  expect(accepted).toBeGreaterThan(5);
}

describe('OpenAI-compatible fast paths (typeof checks instead of zod on the hot path)', () => {
  it('a one-piece answer the fast path accepts, the schema accepts too, and both read the same', () => {
    checkAgainstSchema(answerOf('message'), plainAnswer, openaiCompletionSchema, { fast: readingOf, parsed: readingOf });
  });

  it('a streamed chunk the fast path accepts, the schema accepts too, and both read the same', () => {
    checkAgainstSchema(answerOf('delta'), plainDeltaChunk, openaiChunkSchema, {
      fast: (plain) => ({ text: plain.delta?.content ?? null, finish: plain.finish_reason ?? null }),
      parsed: (data) => {
        const choice = data.choices![0]!;
        return { text: choice.delta?.content ?? null, finish: choice.finish_reason ?? null };
      },
    });
  });

  it('takes the answers providers really send', () => {
    const openai = {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi', refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, prompt_tokens_details: { cached_tokens: 4, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
    };
    expect(plainAnswer(openai)).toBe(openai);
    // DeepSeek's cache field.
    expect(plainAnswer({ ...openai, usage: { prompt_tokens: 9, completion_tokens: 2, prompt_cache_hit_tokens: 3 } })).toBeDefined();
    // Kimi's usage in the choice and Groq's x_groq go through the schema.
    expect(plainAnswer({ choices: [{ ...openai.choices[0], usage: openai.usage }] })).toBeUndefined();
    expect(plainAnswer({ ...openai, usage: undefined, x_groq: { usage: openai.usage } })).toBeUndefined();
    expect(plainDeltaChunk({ choices: [{ index: 0, delta: { content: 'a' }, finish_reason: null }], usage: null })).toBeDefined();
  });
});
