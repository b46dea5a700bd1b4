/** What a parsed chat request tells the mock, whichever wire format it came in. */
export interface MockChatInput {
  model: string;
  stream: boolean;
  /** OpenAI `stream_options.include_usage`. */
  includeUsage: boolean;
  maxTokens: number | undefined;
  lastUserText: string;
  /** Characters of all prompt text (system included), for a stable prompt token count. */
  promptChars: number;
}

/** The answer to one request, decided before the first byte is written. */
export interface MockAnswerPlan {
  /** Unique per request: `chatcmpl-…`, `msg_…` and Gemini's responseId derive from it. */
  serial: number;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  /** The streamed pieces; a piece is one word (with its leading space) and counts as one token. */
  chunks: string[];
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** Cut short by the request's output cap (finish reason length / max_tokens / MAX_TOKENS). */
  truncated: boolean;
  /** Seconds since the epoch, from the mock's clock. */
  created: number;
}

const FILLER = 'and here is more text from the mock provider so that every stream has a few deltas to carry'.split(' ');
const ECHOED_WORDS = 12;

/**
 * Deterministic answer words: "Mock answer to: <first words of the last user message>" then
 * filler, cycled, up to `chunkCount` words (default: the echo plus four filler words).
 */
export function answerWords(lastUserText: string, chunkCount: number | undefined): string[] {
  const echoed = lastUserText.split(/\s+/).filter(Boolean).slice(0, ECHOED_WORDS);
  const base = ['Mock', 'answer', 'to:', ...echoed];
  const count = Math.max(1, chunkCount ?? base.length + 4);
  const words = new Array<string>(count);
  for (let i = 0; i < count; i += 1) words[i] = i < base.length ? (base[i] as string) : (FILLER[(i - base.length) % FILLER.length] as string);
  return words;
}

export function planAnswer(input: MockChatInput, chunkCount: number | undefined, serial: number, nowMs: number): MockAnswerPlan {
  const words = answerWords(input.lastUserText, chunkCount);
  const cap = input.maxTokens !== undefined && input.maxTokens > 0 ? input.maxTokens : Number.POSITIVE_INFINITY;
  const kept = words.length > cap ? words.slice(0, cap) : words;
  const chunks = kept.map((w, i) => (i === 0 ? w : ' ' + w));
  return {
    serial,
    model: input.model,
    stream: input.stream,
    includeUsage: input.includeUsage,
    chunks,
    text: chunks.join(''),
    // Roughly four characters a token, as the providers' own rule of thumb says.
    promptTokens: Math.max(1, Math.ceil(input.promptChars / 4)),
    completionTokens: chunks.length,
    truncated: kept.length < words.length,
    created: Math.floor(nowMs / 1000),
  };
}

/** `mock-chunks-200` anywhere in a model name asks for 200 chunks. */
export function chunkCountFromModel(model: string): number | undefined {
  const match = /mock-chunks-(\d+)/.exec(model);
  return match ? Number(match[1]) : undefined;
}

/** Text of a message content that is either a string or a list of typed parts. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
      out += (out ? ' ' : '') + (part as { text: string }).text;
    }
  }
  return out;
}
