import type { StreamEvent } from '../../shared';
import type { ChatCompleteOutput } from '../../shared/api';

type ErrorEvent = Extract<StreamEvent, { type: 'error' }>;

/** A whole answer from a stream of events: chat.complete and the non-streaming /v1 endpoint. */
export async function collectAnswer(
  events: AsyncIterable<StreamEvent>,
): Promise<{ ok: true; value: ChatCompleteOutput } | { ok: false; error: ErrorEvent }> {
  let text = '';
  let start: Extract<StreamEvent, { type: 'start' }> | undefined;
  let usage: Extract<StreamEvent, { type: 'usage' }> | undefined;
  for await (const event of events) {
    switch (event.type) {
      case 'start':
        start = event;
        break;
      case 'delta':
        text += event.text;
        break;
      case 'usage':
        usage = event;
        break;
      case 'error':
        return { ok: false, error: event };
      case 'done':
        if (!start) return { ok: false, error: { type: 'error', code: 'internal', message: 'answer ended before it started' } };
        return {
          ok: true,
          value: {
            text,
            provider: start.provider,
            model: start.model,
            finishReason: event.finishReason,
            usage: usage?.usage ?? null,
            ...(usage?.cost ? { cost: usage.cost } : {}),
          },
        };
      default:
        break;
    }
  }
  return { ok: false, error: { type: 'error', code: 'internal', message: 'answer ended without done' } };
}
