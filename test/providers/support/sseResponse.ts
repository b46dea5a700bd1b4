import { HttpResponse } from 'msw';

/** An SSE body from raw frames (`data: {...}\n\n`); `cut` ends the body with a network error. */
export function sseResponse(frames: string[], options: { cut?: boolean; status?: number } = {}): Response {
  const encoder = new TextEncoder();
  let next = 0;
  // Pull-based, so queued frames are read before a cut (erroring a stream drops its queue).
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const frame = frames[next++];
      if (frame !== undefined) controller.enqueue(encoder.encode(frame));
      else if (options.cut) controller.error(new TypeError('terminated'));
      else controller.close();
    },
  });
  return new HttpResponse(stream, { status: options.status ?? 200, headers: { 'content-type': 'text/event-stream' } });
}

export const data = (value: unknown): string => `data: ${typeof value === 'string' ? value : JSON.stringify(value)}\n\n`;

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Runs the iterable to its end or its first error; returns what came and what was thrown. */
export async function collectUntilError<T>(iterable: AsyncIterable<T>): Promise<{ events: T[]; error: unknown }> {
  const events: T[] = [];
  try {
    for await (const item of iterable) events.push(item);
  } catch (error) {
    return { events, error };
  }
  return { events, error: undefined };
}
