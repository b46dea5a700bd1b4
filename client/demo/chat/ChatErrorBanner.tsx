import { useState } from 'react';
import type { KeyrackError } from '../../sdk';
import { formatSeconds } from '../ui/format';
import { useNow } from '../ui/useNow';

const MESSAGES: Partial<Record<KeyrackError['code'], string>> = {
  rate_limited: 'Every key for this model is busy right now.',
  quota_exhausted: 'Every key for this model is out of quota.',
  no_keys: 'No usable key is configured for this model.',
  budget_exceeded: 'You have reached your spending limit.',
  prompt_too_long: 'This conversation is too long for the model. Start a new chat.',
  unauthorized: 'Your session expired. Sign out and in again.',
  stream_interrupted: 'The answer was interrupted.',
  upstream_error: 'The provider failed to answer.',
};

export function ChatErrorBanner({ error, retryAfterMs }: { error: KeyrackError; retryAfterMs: number | undefined }) {
  const [shownAt] = useState(Date.now);
  const now = useNow(250, retryAfterMs !== undefined);
  const left = retryAfterMs === undefined ? undefined : shownAt + retryAfterMs - now;
  return (
    <div className={`alert ${error.code === 'rate_limited' ? 'alert-warning' : 'alert-error'}`} role="alert" data-testid="chat-error" data-code={error.code}>
      <strong>{MESSAGES[error.code] ?? 'Something went wrong.'}</strong>
      {left !== undefined && (
        <span data-testid="chat-retry-after">{left > 0 ? ` Try again in ${formatSeconds(left)}.` : ' You can try again now.'}</span>
      )}
      {!MESSAGES[error.code] && <span className="muted"> {error.message}</span>}
    </div>
  );
}
