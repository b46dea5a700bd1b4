import type { KeyrackMessage } from '../../sdk';
import { formatCount, formatUsd } from '../ui/format';

export function MessageBubble({ message, streaming }: { message: KeyrackMessage; streaming: boolean }) {
  const assistant = message.role === 'assistant';
  return (
    <div className={`bubble-row ${message.role}`}>
      <div className={`bubble ${message.role}`} data-testid={`message-${message.role}`} data-finish={message.finishReason ?? ''} data-key={message.keyFingerprint}>
        {message.warnings?.map((w) => (
          <p key={w} className="bubble-warning">
            {w}
          </p>
        ))}
        <div className="bubble-text" data-testid={assistant ? 'answer-text' : undefined}>
          {message.content}
          {streaming && <span className="caret" aria-hidden="true" />}
        </div>
        {assistant && !streaming && <AnswerMeta message={message} />}
      </div>
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
