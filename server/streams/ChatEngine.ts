import type { ChatRequest, StreamEvent } from '../../shared';

export interface ChatEngineRequest {
  chat: ChatRequest;
  userId: string;
  /** Aborting it closes the upstream call at once. */
  signal: AbortSignal;
  requestId?: string;
  /**
   * 'whole' when the caller reads the answer only at its end (chat.complete, non-streaming
   * /v1): the upstream may then send it in one piece (one JSON body instead of an SSE stream
   * of chunks, each parsed and passed along on its own). Default 'stream'.
   */
  delivery?: Delivery;
}

export type Delivery = 'stream' | 'whole';

/**
 * What the gateway needs to answer a chat: server/dispatch's Dispatcher satisfies it
 * structurally. It never throws; a failure is an `error` event and the end of the stream.
 */
export interface ChatEngine {
  stream(req: ChatEngineRequest): AsyncIterable<StreamEvent>;
}
