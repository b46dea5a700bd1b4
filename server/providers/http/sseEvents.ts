import { createParser, type EventSourceMessage } from 'eventsource-parser';

/**
 * Server-sent events of a response body, one by one. Comments (`: keep-alive`, OpenRouter's
 * `: OPENROUTER PROCESSING`) and retry hints are dropped by the parser.
 * Stops reading the body as soon as the consumer stops, which cancels the response.
 */
export async function* sseEvents(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): AsyncGenerator<EventSourceMessage> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => queue.push(event) });
  const decoder = new TextDecoder();
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    while (queue.length > 0) yield queue.shift() as EventSourceMessage;
  }
  parser.feed(decoder.decode());
  // A final event without its blank line was never completed: the stream was cut.
  while (queue.length > 0) yield queue.shift() as EventSourceMessage;
}
