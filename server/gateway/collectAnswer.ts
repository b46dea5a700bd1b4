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
  let reasoning = '';
  // By the index the deltas carry: the first fragment of an index names the call.
  const calls = new Map<number, { id: string; name: string; arguments: string }>();
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
      case 'reasoning':
        reasoning += event.text;
        break;
      case 'tool_call_delta': {
        const call = calls.get(event.index);
        if (call) {
          call.arguments += event.argumentsDelta;
          if (event.id) call.id = event.id;
          if (event.name) call.name = event.name;
        } else {
          calls.set(event.index, { id: event.id ?? '', name: event.name ?? '', arguments: event.argumentsDelta });
        }
        break;
      }
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
                toolCalls: [...calls.entries()].sort(([a], [b]) => a - b).map(([, call]) => call),
                reasoning,
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
