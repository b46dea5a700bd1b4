import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { readUpstreamBody } from './UpstreamHttp';

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
  let finished = false;
  /** A chunk's events from `index` on, each handed to onEvent, waiting where it asks. */
  const deliver = (events: EventSourceMessage[], index: number): void | Promise<void> => {
    for (let i = index; i < events.length; i += 1) {
      const wait = onEvent(events[i]!.data);
      if (answered()) {
        finished = true;
        return wait;
      }
      if (wait) return wait.then(() => deliver(events, i + 1));
    }
    return undefined;
  };
  await readUpstreamBody(body, apiKey, (bytes) => deliver(sse.feed(bytes), 0), () => finished);
  // A last event without its blank line was never completed: sse.end() gives what is left.
  if (!finished) {
    const tail = deliver(sse.end(), 0);
    if (tail) await tail;
  }
}
