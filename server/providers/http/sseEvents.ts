import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { upstreamBody } from './upstreamBody';
import { networkError } from './UpstreamHttp';

/**
 * Server-sent events of a response body, one network read at a time: `feed` returns the events
 * completed by those bytes, `end` the ones left when the body ended (a final event without its
 * blank line was never completed: the stream was cut). Comments (`: keep-alive`, OpenRouter's
 * `: OPENROUTER PROCESSING`) and retry hints are dropped by the parser.
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

/** What an adapter does with one SSE event's data; a promise back holds the body's reading until it settles. */
export type SseEventHandler = (data: string) => void | Promise<void>;

/**
 * Reads a streamed response body's server-sent events into `onEvent`, one network read at a
 * time, until the body ends or `answered()` says the terminal event was read (then the rest is
 * drained and the connection kept). Failures of the read itself reject as a transient
 * ProviderError with a safe message; whatever `onEvent` throws comes back unchanged (the
 * reader's failure, not the provider's).
 */
export async function readSseEvents(body: unknown, apiKey: string, onEvent: SseEventHandler, answered: () => boolean): Promise<void> {
  const sse = createSseReader();
  const reader = upstreamBody(body);
  let finished = false;
  try {
    for (;;) {
      let bytes: Uint8Array | undefined;
      try {
        bytes = await reader.read();
      } catch (error) {
        throw networkError(error, apiKey);
      }
      for (const event of bytes ? sse.feed(bytes) : sse.end()) {
        const wait = onEvent(event.data);
        if (wait) await wait;
        if (answered()) {
          finished = true;
          return;
        }
      }
      if (!bytes) return;
    }
  } finally {
    reader.release(finished);
  }
}
