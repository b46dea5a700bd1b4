import { describe, expectTypeOf, it } from 'vitest';
import type { PoolStatus, ProviderId, StreamEvent, TokenUsage } from '../../shared';
import type { ModelInfo } from '../../shared/api';
import type { EmbeddingsCreateInput } from '../../shared/embeddings';
import {
  createKeyrackClient,
  useChat,
  useEmbeddings,
  useModels,
  usePoolStatus,
  type ChatStatus,
  type EmbeddingsInput,
  type EmbeddingsResult,
  type KeyrackClient,
  type KeyrackError,
  type KeyrackModel,
  type UseChatResult,
  type UsePoolStatusResult,
} from '../../client/sdk';

/**
 * The SDK's types come from the gateway's router: a wrong input is a compile error. Each
 * `@ts-expect-error` below fails this file (vitest typecheck) if the line stops being an error.
 */

declare const chat: UseChatResult;
declare const pool: UsePoolStatusResult;
declare const client: KeyrackClient;

describe('useChat', () => {
  it('takes a model and returns the documented state', () => {
    expectTypeOf(useChat).parameter(0).toHaveProperty('model').toEqualTypeOf<string>();
    expectTypeOf(chat.status).toEqualTypeOf<ChatStatus>();
    expectTypeOf<ChatStatus>().toEqualTypeOf<'ready' | 'submitted' | 'streaming' | 'error'>();
    expectTypeOf(chat.send).toEqualTypeOf<(text: string, options?: { images?: readonly string[] }) => Promise<void>>();
    expectTypeOf(chat.stop).toEqualTypeOf<() => void>();
    expectTypeOf(chat.error).toEqualTypeOf<KeyrackError | null>();
    expectTypeOf(chat.usage).toEqualTypeOf<TokenUsage | null>();
    expectTypeOf(chat.retryAfterMs).toEqualTypeOf<number | undefined>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error model is required
    useChat({});
    // @ts-expect-error model is a string
    useChat({ model: 4 });
    // @ts-expect-error initial messages need a known role
    useChat({ model: 'gpt-4o', initialMessages: [{ id: '1', role: 'robot', content: 'hi' }] });
    // @ts-expect-error send takes text
    void chat.send({ text: 'hi' });
  });
});

describe('usePoolStatus', () => {
  it('yields the router pool status and a typed setKeyEnabled', () => {
    expectTypeOf(pool.status).toEqualTypeOf<PoolStatus | undefined>();
    expectTypeOf(pool.setKeyEnabled).parameter(0).toEqualTypeOf<{ provider: ProviderId; fingerprint: string; enabled: boolean }>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error unknown provider
    void pool.setKeyEnabled({ provider: 'nope', fingerprint: 'f', enabled: true });
    // @ts-expect-error enabled is a boolean
    void pool.setKeyEnabled({ provider: 'openai', fingerprint: 'f', enabled: 'yes' });
    // @ts-expect-error onUpdate receives a PoolStatus
    usePoolStatus({ onUpdate: (s: string) => s });
  });
});

describe('useModels', () => {
  it('returns models.list as the router declares it', () => {
    expectTypeOf<KeyrackModel>().toEqualTypeOf<ModelInfo>();
    expectTypeOf(useModels).returns.toHaveProperty('data').toEqualTypeOf<ModelInfo[] | undefined>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error models.list takes no input
    useModels({ provider: 'openai' });
  });
});

describe('useEmbeddings (issue 21)', () => {
  it('takes model and input, answers vectors', () => {
    expectTypeOf<EmbeddingsInput>().toEqualTypeOf<EmbeddingsCreateInput>();
    expectTypeOf<EmbeddingsResult['embeddings']>().toEqualTypeOf<number[][]>();
    expectTypeOf(useEmbeddings).returns.toHaveProperty('mutateAsync').parameter(0).toEqualTypeOf<EmbeddingsCreateInput>();
    expectTypeOf(client.embeddings.create.mutate).returns.resolves.toEqualTypeOf<EmbeddingsResult>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error input is required
    void client.embeddings.create.mutate({ model: 'text-embedding-3-small' });
    // @ts-expect-error encodingFormat is /v1's, not the procedure's
    void client.embeddings.create.mutate({ model: 'text-embedding-3-small', input: 'x', encodingFormat: 'base64' });
  });
});

describe('createKeyrackClient', () => {
  it('is typed end to end by the router', () => {
    expectTypeOf(createKeyrackClient).returns.toEqualTypeOf<KeyrackClient>();
    expectTypeOf(client.chat.start.mutate).returns.resolves.toEqualTypeOf<{ streamId: string; events: { id: string; event: StreamEvent }[] }>();
    expectTypeOf(client.chat.stream.subscribe).parameter(1).toHaveProperty('onData').exclude<undefined>().parameter(0).toEqualTypeOf<{ id: string; data: StreamEvent }>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error getToken is required
    createKeyrackClient({ url: '/trpc' });
    // @ts-expect-error messages need a known role
    void client.chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'robot', content: 'hi' }] });
    // @ts-expect-error streamId is required
    client.chat.stream.subscribe({ lastEventId: '3' }, {});
  });
});
