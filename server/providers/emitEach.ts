import type { AdapterEvent, AdapterSink } from './types';

/** Pushes events in order, waiting only where the sink asks to (its promise). */
export async function emitEach(events: readonly AdapterEvent[], emit: AdapterSink): Promise<void> {
  for (const event of events) {
    const wait = emit(event);
    if (wait) await wait;
  }
}

/**
 * A chunk's texts: nearly always one string, an array only for the rare chunk with several
 * (several choices or parts). No array per chunk: emptying a reused array with `length = 0`
 * drops its backing store, so every chunk's push allocated a new one (issue #8).
 */
export type ChunkTexts = string | string[] | undefined;

/** `texts` with `text` after it. */
export function addText(texts: ChunkTexts, text: string): ChunkTexts {
  if (texts === undefined) return text;
  if (typeof texts === 'string') return [texts, text];
  texts.push(text);
  return texts;
}

/** A chunk's texts as deltas, pushed without an async function's promise when there is one. */
export function emitTexts(texts: ChunkTexts, emit: AdapterSink): void | Promise<void> {
  if (texts === undefined) return undefined;
  if (typeof texts === 'string') return emit({ type: 'delta', text: texts });
  return emitEach(texts.map((text): AdapterEvent => ({ type: 'delta', text })), emit);
}
