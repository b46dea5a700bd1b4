import { useEffect, useState, useSyncExternalStore } from 'react';
import { ChatController, type ChatRequestOptions, type ChatSnapshot, type KeyrackMessage, type SendOptions } from './chat/ChatController';
import type { KeyrackTools } from './chat/KeyrackTool';
import { trpcChatTransport } from './chat/trpcChatTransport';
import { useKeyrackClient } from './KeyrackProvider';

export interface UseChatOptions {
  /** `gpt-4o`, or `provider/model`, as models.list names them. */
  model: string;
  initialMessages?: readonly KeyrackMessage[];
  /** Called once per answer when it ends (done, stopped, or failed after something arrived); each tool step is an answer. */
  onFinish?: (message: KeyrackMessage) => void;
  /** Functions the model may call, by name: those with `execute` run in the browser and their results go back by themselves. */
  tools?: KeyrackTools;
  /** Answers one user message may take, tool steps included (default 5). */
  maxSteps?: number;
  /** Other request fields (temperature, maxTokens, toolChoice, responseFormat, reasoningEffort, ...), sent with every step. */
  request?: ChatRequestOptions;
}

export interface UseChatResult extends ChatSnapshot {
  /** Sends a user message (text and/or `images`) and streams the answer; resolves when the turn ends. */
  send: (text: string, options?: SendOptions) => Promise<void>;
  /** Answers a tool call that has no `execute`; the conversation goes on once every call of the answer has a result. */
  addToolResult: (input: { toolCallId: string; result: unknown }) => Promise<void>;
  /** Cancels the answer upstream and any running tool; keeps what was received so far. */
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
      }),
  );
  // The latest options each render: tools and callbacks are usually new closures every time.
  controller.setOptions({ model: options.model, onFinish: options.onFinish, tools: options.tools, maxSteps: options.maxSteps, request: options.request });
  const snapshot = useSyncExternalStore(controller.subscribe, controller.getSnapshot, controller.getSnapshot);
  // Leaving the page cancels the answer upstream instead of letting it run unseen.
  useEffect(() => () => controller.stop(), [controller]);
  return { ...snapshot, send: controller.send, addToolResult: controller.addToolResult, stop: controller.stop, setMessages: (m) => controller.setMessages(m) };
}
