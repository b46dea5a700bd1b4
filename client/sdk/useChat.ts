import { useEffect, useState, useSyncExternalStore } from 'react';
import { ChatController, type ChatSnapshot, type KeyrackMessage } from './chat/ChatController';
import { trpcChatTransport } from './chat/trpcChatTransport';
import { useKeyrackClient } from './KeyrackProvider';

export interface UseChatOptions {
  /** `gpt-4o`, or `provider/model`, as models.list names them. */
  model: string;
  initialMessages?: readonly KeyrackMessage[];
  /** Called once per answer when it ends (done, stopped, or failed after text arrived). */
  onFinish?: (message: KeyrackMessage) => void;
}

export interface UseChatResult extends ChatSnapshot {
  /** Sends a user message and streams the answer; resolves when the answer ends. */
  send: (text: string) => Promise<void>;
  /** Cancels the answer upstream; keeps the text received so far. */
  stop: () => void;
  /** Replaces the conversation (stops a running answer first). */
  setMessages: (messages: readonly KeyrackMessage[]) => void;
}

/** A streamed chat with the gateway. State lives in a ChatController; React reads its snapshots. */
export function useChat(options: UseChatOptions): UseChatResult {
  const client = useKeyrackClient();
  const [controller] = useState(
    () =>
      new ChatController({
        transport: trpcChatTransport(client),
        model: options.model,
        ...(options.initialMessages ? { initialMessages: options.initialMessages } : {}),
        ...(options.onFinish ? { onFinish: options.onFinish } : {}),
      }),
  );
  controller.setOptions({ model: options.model, onFinish: options.onFinish });
  const snapshot = useSyncExternalStore(controller.subscribe, controller.getSnapshot, controller.getSnapshot);
  // Leaving the page cancels the answer upstream instead of letting it run unseen.
  useEffect(() => () => controller.stop(), [controller]);
  return { ...snapshot, send: controller.send, stop: controller.stop, setMessages: (m) => controller.setMessages(m) };
}
