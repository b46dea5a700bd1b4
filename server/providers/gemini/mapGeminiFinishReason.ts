import type { FinishReason } from '../../../shared';

export function mapGeminiFinishReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'STOP':
      return 'stop';
    case 'MAX_TOKENS':
      return 'length';
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
      return 'content_filter';
    // The model tried a call and failed (no call came): `tool_calls` would promise calls that
    // are not there. An answer with calls says STOP, made tool_calls by the adapter.
    case 'MALFORMED_FUNCTION_CALL':
    case 'UNEXPECTED_TOOL_CALL':
      return 'other';
    default:
      return 'other';
  }
}
