import type { KeyrackClient } from '../createKeyrackClient';
import type { ChatTransport } from './ChatTransport';

/** chat.start + chat.stream over a Keyrack tRPC client. */
export function trpcChatTransport(client: KeyrackClient): ChatTransport {
  return {
    start: (request) => client.chat.start.mutate(request),
    stream(input, handlers) {
      const subscription = client.chat.stream.subscribe(input, {
        onData: (tracked) => handlers.onEvent({ id: tracked.id, event: tracked.data }),
        onError: (error) => handlers.onError(error),
        onComplete: () => handlers.onComplete(),
      });
      return () => subscription.unsubscribe();
    },
  };
}
