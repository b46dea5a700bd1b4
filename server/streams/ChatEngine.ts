import type { ChatRequest, StreamEvent } from '../../shared';

export interface ChatEngineRequest {
  chat: ChatRequest;
  userId: string;
  /** Aborting it closes the upstream call at once. */
  signal: AbortSignal;
  requestId?: string;
}

/**
 * What the gateway needs to answer a chat: server/dispatch's Dispatcher satisfies it
 * structurally. It never throws; a failure is an `error` event and the end of the stream.
 */
export interface ChatEngine {
  stream(req: ChatEngineRequest): AsyncIterable<StreamEvent>;
}
