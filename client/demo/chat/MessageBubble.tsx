import type { KeyrackMessage, KeyrackToolCall } from '../../sdk';
import { formatCount, formatUsd } from '../ui/format';

export function MessageBubble({ message, streaming }: { message: KeyrackMessage; streaming: boolean }) {
  const assistant = message.role === 'assistant';
  const calls = message.toolCalls ?? [];
  // A step that only called tools has no text: no empty text line, unless it is still arriving.
  const showText = message.content !== '' || (streaming && calls.length === 0);
  return (
    <div className={`bubble-row ${message.role}`}>
      <div className={`bubble ${message.role}`} data-testid={`message-${message.role}`} data-finish={message.finishReason ?? ''} data-key={message.keyFingerprint}>
        {message.warnings?.map((w) => (
          <p key={w} className="bubble-warning">
            {w}
          </p>
        ))}
        {message.images && message.images.length > 0 && (
          <div className="bubble-images">
            {message.images.map((url, i) => (
              <img key={url.slice(-32) + i} src={url} alt={`Image ${i + 1}`} data-testid="message-image" />
            ))}
          </div>
        )}
        {message.reasoning && (
          // Thinking is not the answer: shown apart, folded away unless asked for.
          <details className="bubble-reasoning" data-testid="answer-reasoning">
            <summary>{streaming && message.content === '' && calls.length === 0 ? 'Thinking…' : 'Reasoning'}</summary>
            <div className="bubble-reasoning-text">{message.reasoning}</div>
          </details>
        )}
        {showText && (
          <div className="bubble-text" data-testid={assistant ? 'answer-text' : undefined}>
            {message.content}
            {streaming && <span className="caret" aria-hidden="true" />}
          </div>
        )}
        {calls.map((call) => (
          <ToolCallCard key={call.id} call={call} />
        ))}
        {assistant && !streaming && <AnswerMeta message={message} />}
      </div>
    </div>
  );
}

const STATE_LABEL: Record<KeyrackToolCall['state'], string> = { partial: 'calling…', call: 'running…', result: 'done', error: 'failed' };

function ToolCallCard({ call }: { call: KeyrackToolCall }) {
  return (
    <div className={`tool-call tool-call-${call.state}`} data-testid="tool-call" data-name={call.name} data-state={call.state}>
      <div className="tool-call-head">
        <span className="tool-call-name">
          <svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="1.5" strokeLinecap="round">
            <path d="M7.5 1.5a3 3 0 0 0-3 4L1.5 8.5l2 2 3-3a3 3 0 0 0 4-3l-1.5 1.5-2-2z" />
          </svg>
          {call.name || 'tool'}
        </span>
        <span className={`tag ${call.state === 'error' ? 'tag-danger' : 'tag-muted'}`} data-testid="tool-call-state">
          {STATE_LABEL[call.state]}
        </span>
      </div>
      <code className="tool-call-args" data-testid="tool-call-args">
        {call.argumentsText || '{}'}
      </code>
      {call.state === 'result' && (
        <code className="tool-call-result" data-testid="tool-call-result">
          → {typeof call.result === 'string' ? call.result : JSON.stringify(call.result)}
        </code>
      )}
      {call.state === 'error' && (
        <span className="tool-call-error" data-testid="tool-call-error">
          {call.error}
        </span>
      )}
    </div>
  );
}

function AnswerMeta({ message }: { message: KeyrackMessage }) {
  const cost = message.cost?.actualUsd ?? message.cost?.estimatedUsd;
  return (
    <div className="bubble-meta" data-testid="answer-meta">
      {message.model && <span>{message.model}</span>}
      {message.usage && (
        <span data-testid="answer-usage" title="Input / output tokens">
          {formatCount(message.usage.inputTokens)} in · {formatCount(message.usage.outputTokens)} out
        </span>
      )}
      {cost !== undefined && (
        <span data-testid="answer-cost" title={message.cost?.actualUsd === undefined ? 'Estimated cost' : 'Cost'}>
          {formatUsd(cost)}
        </span>
      )}
      {message.finishReason === 'aborted' && <span className="tag tag-muted">stopped</span>}
      {message.finishReason === 'error' && <span className="tag tag-danger">interrupted</span>}
      {message.finishReason === 'length' && <span className="tag tag-muted">truncated</span>}
    </div>
  );
}
