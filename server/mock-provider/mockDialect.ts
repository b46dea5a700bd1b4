import type { IncomingHttpHeaders } from 'node:http';
import type { MockAnswerPlan, MockChatInput } from './mockAnswer';
import type { MockProviderName } from './mockFault';
import type { RateWindow } from './RpmLimiter';

export type MockErrorKind =
  | 'missingKey'
  | 'rejected'
  | 'forbidden'
  | 'quota'
  | 'billing'
  | 'rateLimit'
  | 'serverError'
  | 'overloaded'
  | 'badRequest'
  | 'notFound';

export interface MockErrorInfo {
  kind: MockErrorKind;
  /** serverError: which 5xx. */
  status?: number;
  /** badRequest / notFound: what was wrong. */
  detail?: string;
  model?: string;
  /** The key's mask (as OpenAI echoes it back), never the key. */
  mask?: string;
  /** rateLimit: when to come back. */
  retryAfterMs?: number;
  /** rateLimit from the RPM limiter: the window that ran out. */
  window?: RateWindow;
  now: number;
}

export interface MockReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Gemini names model and streaming in the path; OpenAI and Anthropic in the body (`stream` false here). */
export type MockEndpoint =
  | { kind: 'models' }
  | { kind: 'chat'; stream: boolean; model?: string; /** OpenAI's Responses API rather than the wire's chat endpoint (issue 21). */ api?: 'responses' }
  | { kind: 'countTokens' }
  /** Issue 21: OpenAI's /embeddings (model in the body), Gemini's :batchEmbedContents / :embedContent (`batch`, model in the path). */
  | { kind: 'embeddings'; model?: string; batch?: boolean };

/**
 * One streamed answer as text frames. Built per request with the constant parts of each frame
 * serialised once; a delta only escapes its own text.
 */
export interface MockStreamRenderer {
  contentType: string;
  head(): string;
  delta(text: string, index: number): string;
  tail(): string;
  /** A data line whose JSON does not parse. */
  malformed(): string;
  /** The provider's error as it arrives inside a 200 stream. */
  error(info: MockErrorInfo): string;
}

/** A provider's wire format as the mock speaks it: routes, auth, bodies, streams and errors. */
export interface MockDialect {
  provider: MockProviderName;
  /** Path prefix on the mock, e.g. `/openai/v1`. */
  prefix: string;
  route(method: string, path: string, query: URLSearchParams): MockEndpoint | undefined;
  keyOf(headers: IncomingHttpHeaders, query: URLSearchParams): string | undefined;
  /** Required headers besides the key (Anthropic's `anthropic-version`); a message if one is missing. */
  missingHeader?(headers: IncomingHttpHeaders): string | undefined;
  /** The request body as the mock needs it, or what is wrong with it. */
  parseChat(body: unknown, endpoint: Extract<MockEndpoint, { kind: 'chat' }>): MockChatInput | { error: string };
  error(info: MockErrorInfo): MockReply;
  /** Rate-limit headers the provider sends with every answer, when the mock has a limit. */
  windowHeaders(window: RateWindow, now: number): Record<string, string>;
  /** Headers on every answer (request ids). */
  commonHeaders(serial: number): Record<string, string>;
  models(): string;
  /** Anthropic's `POST /v1/messages/count_tokens` (issue 21): the reply to a parsed JSON body. */
  countTokens?(body: unknown): MockReply;
  reply(plan: MockAnswerPlan): string;
  /** The embeddings answer (or its 400) for dialects that route an `embeddings` endpoint (wire/embeddingsMock.ts). */
  embed?(body: unknown, endpoint: Extract<MockEndpoint, { kind: 'embeddings' }>): MockReply;
  stream(plan: MockAnswerPlan, query: URLSearchParams): MockStreamRenderer;
}

export const JSON_TYPE = 'application/json';

export function jsonReply(status: number, body: unknown, headers: Record<string, string> = {}, contentType = JSON_TYPE): MockReply {
  return { status, headers: { 'content-type': contentType, ...headers }, body: JSON.stringify(body) };
}
