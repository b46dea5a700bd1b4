import type { AdapterEvent, AdapterSink } from './types';

/** Pushes events in order, waiting only where the sink asks to (its promise). */
export async function emitEach(events: readonly AdapterEvent[], emit: AdapterSink): Promise<void> {
  for (const event of events) {
    const wait = emit(event);
    if (wait) await wait;
  }
}

/** One chunk's texts as deltas: nearly always one, pushed without an async function's promise. */
export function emitTexts(texts: readonly string[], emit: AdapterSink): void | Promise<void> {
  if (texts.length === 1) return emit({ type: 'delta', text: texts[0]! });
  if (texts.length === 0) return undefined;
  return emitEach(texts.map((text): AdapterEvent => ({ type: 'delta', text })), emit);
}
