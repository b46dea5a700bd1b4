import type { KeyTestResult } from '../types';
import { readErrorBody, type UpstreamHttp } from './UpstreamHttp';

export interface KeyTestCall {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: unknown;
  apiKey: string;
  signal: AbortSignal;
  /** Statuses that prove the key was accepted even though the call failed (an empty test body's 400). */
  acceptedStatuses?: readonly number[];
  /** Some providers answer a bad key with 400 and a message instead of 401. */
  rejectedMessage?: RegExp;
}

/**
 * One cheap authenticated call. 2xx and 429 (throttled, so the key was read and known) count as
 * valid; 401/403 as rejected; network trouble and 5xx as unreachable, since they say nothing
 * about the key.
 */
export async function testKeyRequest(http: UpstreamHttp, call: KeyTestCall): Promise<KeyTestResult> {
  let response: Response;
  try {
    response = await http.fetch(call.url, {
      method: call.method,
      headers: call.headers,
      ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
      signal: call.signal,
      apiKey: call.apiKey,
    });
  } catch {
    return 'unreachable';
  }
  const status = response.status;
  const body = await readErrorBody(response);
  if (status === 401 || status === 403) return 'rejected';
  if (call.rejectedMessage && status === 400 && call.rejectedMessage.test(body)) return 'rejected';
  if (response.ok || status === 429 || call.acceptedStatuses?.includes(status)) return 'valid';
  // Gemini answers a bad key with 400 API_KEY_INVALID.
  if (status === 400 && /API_KEY_INVALID|api key not valid/i.test(body)) return 'rejected';
  return 'unreachable';
}
