import type { ChatRequest, StreamEvent } from '../../../shared';

/** One event of a chat stream with the id the gateway gave it (used to resume without repeats). */
export interface TrackedStreamEvent {
  id: string;
  event: StreamEvent;
}

export interface ChatStreamHandlers {
  onEvent(event: TrackedStreamEvent): void;
  /** The stream broke for good (the transport's own reconnects already gave up). */
  onError(error: unknown): void;
  /** The server ended the stream. */
  onComplete(): void;
}

/**
 * How a ChatController talks to a gateway. The tRPC one is the default; tests and other
 * frameworks can bring their own.
 */
export interface ChatTransport {
  /**
   * Starts the answer. `events`: what the stream already held when the gateway answered (its
   * first text, usually), shown before the stream opens; the stream then resumes after them.
   */
  start(request: ChatRequest): Promise<{ streamId: string; events?: readonly TrackedStreamEvent[] }>;
  /** Opens the stream; resumes after `lastEventId` when given. The returned function cancels it. */
  stream(input: { streamId: string; lastEventId?: string }, handlers: ChatStreamHandlers): () => void;
}
