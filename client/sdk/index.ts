/**
 * Keyrack's React SDK: a typed client for the gateway and hooks for chat, the key pool,
 * bring-your-own keys, models and usage. Everything public is exported here.
 */
export { createKeyrackClient, type KeyrackClient, type KeyrackClientOptions, type TokenSource } from './createKeyrackClient';
export { KeyrackProvider, useKeyrackClient, type KeyrackProviderProps } from './KeyrackProvider';
export { KeyrackError, toKeyrackError, type KeyrackErrorCode } from './KeyrackError';
export {
  ChatController,
  DEFAULT_MAX_STEPS,
  type ChatControllerOptions,
  type ChatCost,
  type ChatRequestOptions,
  type ChatSnapshot,
  type ChatStatus,
  type KeyrackMessage,
  type KeyrackMessageRole,
  type KeyrackToolCall,
  type SendOptions,
  type ToolCallState,
} from './chat/ChatController';
export { tool, type KeyrackTool, type KeyrackTools, type ToolExecuteContext } from './chat/KeyrackTool';
export { toRequestMessages } from './chat/toRequestMessages';
export type { ChatStreamHandlers, ChatTransport, TrackedStreamEvent } from './chat/ChatTransport';
export { trpcChatTransport } from './chat/trpcChatTransport';
export { useChat, type UseChatOptions, type UseChatResult } from './useChat';
export { usePoolStatus, type UsePoolStatusOptions, type UsePoolStatusResult } from './usePoolStatus';
export { useModels } from './useModels';
export { useEmbeddings, type EmbeddingsInput, type EmbeddingsResult } from './useEmbeddings';
export { useByokKeys, type AddByokKeyInput, type ByokKeyInfo, type ByokTestOutput, type UseByokKeysResult } from './useByokKeys';
export { useByokSettings, type ByokSettings, type UseByokSettingsResult } from './useByokSettings';
export { useUsage, type MyUsage, type UsageRangeInput } from './useUsage';
export { trpc } from './trpc';
export type { AppRouter, KeyrackModel, RouterInputs, RouterOutputs } from './types';
