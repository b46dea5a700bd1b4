import { createParser, type EventSourceMessage } from 'eventsource-parser';

/**
 * Server-sent events of a response body, one network read at a time: `feed` returns the events
 * completed by those bytes, `end` the ones left when the body ended (a final event without its
 * blank line was never completed: the stream was cut). Comments (`: keep-alive`, OpenRouter's
 * `: OPENROUTER PROCESSING`) and retry hints are dropped by the parser.
 *
 * A hot adapter loops over the body itself and calls `feed`, rather than going through
 * `sseEvents`: one async generator level less per chunk (issue #8).
 */
export interface SseReader {
  feed(bytes: Uint8Array): EventSourceMessage[];
  end(): EventSourceMessage[];
}

export function createSseReader(): SseReader {
  let queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => queue.push(event) });
  const decoder = new TextDecoder();
  const take = () => {
    const events = queue;
    queue = [];
    return events;
  };
  return {
    feed(bytes) {
      parser.feed(decoder.decode(bytes, { stream: true }));
      return take();
    },
    end() {
      parser.feed(decoder.decode());
      return take();
    },
  };
}

/**
 * Server-sent events of a response body, one by one.
 * Stops reading the body as soon as the consumer stops, which cancels the response.
 */
export async function* sseEvents(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): AsyncGenerator<EventSourceMessage> {
  const reader = createSseReader();
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) yield* reader.feed(chunk);
  yield* reader.end();
}
