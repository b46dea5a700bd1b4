import type { StreamEvent } from '../../shared';
import type { ChatCompleteOutput } from '../../shared/api';
import type { EventSink } from '../streams/ChatEngine';

type ErrorEvent = Extract<StreamEvent, { type: 'error' }>;

export type AnswerResult = { ok: true; value: ChatCompleteOutput } | { ok: false; error: ErrorEvent };

/**
 * A whole answer from an engine's events: chat.complete and the non-streaming /v1 endpoint.
 * `run` pushes the events (e.g. `(emit) => engine.run(req, emit)`); what follows the first
 * `done` or `error` is ignored.
 */
export async function collectAnswer(run: (emit: EventSink) => Promise<void>): Promise<AnswerResult> {
  let text = '';
  let start: Extract<StreamEvent, { type: 'start' }> | undefined;
  let usage: Extract<StreamEvent, { type: 'usage' }> | undefined;
  let result: AnswerResult | undefined;
  await run((event) => {
    if (result) return;
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
        result = { ok: false, error: event };
        break;
      case 'done':
        result = start
          ? {
              ok: true,
              value: {
                text,
                provider: start.provider,
                model: start.model,
                finishReason: event.finishReason,
                usage: usage?.usage ?? null,
                ...(usage?.cost ? { cost: usage.cost } : {}),
              },
            }
          : { ok: false, error: { type: 'error', code: 'internal', message: 'answer ended before it started' } };
        break;
      default:
        break;
    }
  });
  return result ?? { ok: false, error: { type: 'error', code: 'internal', message: 'answer ended without done' } };
}
