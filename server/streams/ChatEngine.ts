import type { ChatRequest, StreamEvent } from '../../shared';
import { pullFrom } from './pullFrom';

export interface ChatEngineRequest {
  chat: ChatRequest;
  userId: string;
  /** Aborting it closes the upstream call at once. */
  signal: AbortSignal;
  /**
   * The controller behind `signal`, when the caller made one for this answer: the tracking layer
   * aborts it (shutdown, a stalled upstream) instead of making a second controller and
   * listening on the first. A controller and its signal's listeners were ~4% of what a /v1
   * request allocated (issue #8).
   */
  controller?: AbortController;
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
 * Where an engine pushes an answer's events, in order. A promise back means "wait for it
 * before the next event" (the reader is full); most events return nothing. A sink must not
 * throw: an engine stops the answer and rejects with what it threw.
 */
export type EventSink = (event: StreamEvent) => void | Promise<void>;

/**
 * What the gateway needs to answer a chat: server/dispatch's Dispatcher satisfies it
 * structurally, and the metering and tracking layers wrap it.
 *
 * Push, not pull (issue #8): each layer used to be an async generator over the one inside
 * it, so every streamed chunk went through seven generator levels, each with its own promises
 * and iterator results. That churn was ~95% of what the streaming path allocated per event,
 * and at 1,000 streams most of it lived just long enough to be promoted. Now the layers are
 * plain callbacks around one sink, down to the provider adapters (ProviderAdapter.run): what is
 * left per chunk is one upstream read.
 */
export interface ChatEngine {
  /**
   * Pushes the answer to `emit` and resolves after its last event (`done` or `error`). A failure
   * is an `error` event; it rejects only when `emit` throws. The request's signal stops it.
   */
  run(req: ChatEngineRequest, emit: EventSink): Promise<void>;
}

/** Pushes an iterable's events to `emit`, waiting where it asks to (an engine written as a generator). */
export async function pushEach(events: AsyncIterable<StreamEvent> | Iterable<StreamEvent>, emit: EventSink): Promise<void> {
  for await (const event of events) {
    const wait = emit(event);
    if (wait) await wait;
  }
}

/**
 * An answer as an async iterable, for readers that pull (tests, tools): the engine waits while
 * the reader has not taken the last event. Stopping early (break, return) aborts the answer.
 */
export function eventsOf<R extends { signal: AbortSignal }>(
  engine: { run(req: R, emit: EventSink): Promise<void> },
  req: R,
): AsyncGenerator<StreamEvent> {
  return pullFrom<StreamEvent>((emit, signal) => engine.run({ ...req, signal }, emit), req.signal);
}
