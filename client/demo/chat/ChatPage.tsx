import { useEffect, useRef, useState } from 'react';
import { PROVIDERS } from '../../../shared';
import { trpc, useChat, useModels, useUsage } from '../../sdk';
import { formatCount, formatUsd } from '../ui/format';
import { Composer } from './Composer';
import { ChatErrorBanner } from './ChatErrorBanner';
import { DEMO_TOOLS } from './demoTools';
import { MessageBubble } from './MessageBubble';
import { ModelPicker } from './ModelPicker';

const SUGGESTIONS = ['Explain key rotation in two sentences', 'Write a haiku about rate limits', 'What does a gateway do?'];
/** Names the tool: the model (and the mock, which calls the tools a message names) then uses it. */
const TOOL_SUGGESTION = 'What time is it in UTC? Use get_time';

export function ChatPage() {
  const models = useModels();
  const [model, setModel] = useState('');
  // Chat models only: embedding models (issue 21) answer embeddings.create, not a chat.
  const list = (models.data ?? []).filter((m) => m.kind === 'chat');
  useEffect(() => {
    // Default to the first model of the first provider in the picker's order.
    const first = PROVIDERS.map((p) => list.find((m) => m.provider === p.id)).find(Boolean);
    if (model === '' && first) setModel(first.id);
  }, [list, model]);

  // Off by default: a model without tool support (in the catalog) refuses a request that offers tools.
  const [toolsOn, setToolsOn] = useState(false);
  const chat = useChat({ model, ...(toolsOn ? { tools: DEMO_TOOLS } : {}) });
  const busy = chat.status === 'submitted' || chat.status === 'streaming';
  const today = useUsage();
  const utils = trpc.useUtils();
  // The ledger records an answer when it ends: refresh today's total then, not only every 30 s.
  useEffect(() => {
    if (!busy) void utils.usage.mine.invalidate();
  }, [busy, utils]);
  const endRef = useRef<HTMLDivElement>(null);
  // Each change of the last message (text, reasoning, a tool call) is a new object.
  const last = chat.messages.at(-1);
  useEffect(() => {
    endRef.current?.scrollIntoView?.({ block: 'end' });
  }, [chat.messages.length, last]);
  // Waiting for an answer: after the user's message, or after a tool step, before the next step's first event.
  const pending = chat.status === 'submitted' && (last?.role === 'user' || last?.finishReason !== undefined);

  return (
    <div className="chat-page">
      <header className="page-head chat-head">
        <div>
          <h1>Chat</h1>
          <p className="muted">
            Streamed through your own keys first, then the shared pool.
            {today.data && (
              <span className="chat-today" data-testid="usage-today">
                {' '}
                Today: {formatCount(today.data.requests)} {today.data.requests === 1 ? 'request' : 'requests'} · {formatUsd(today.data.costUsd)}
              </span>
            )}
          </p>
        </div>
        <div className="chat-head-actions">
          <ModelPicker models={list} value={model} onChange={setModel} loading={models.isLoading} disabled={busy} />
          <label className="tools-toggle" title="Offer the model a get_time tool that runs in this page">
            <input type="checkbox" checked={toolsOn} onChange={(e) => setToolsOn(e.target.checked)} disabled={busy} data-testid="chat-tools-toggle" />
            get_time tool
          </label>
          <button className="btn btn-ghost btn-sm" onClick={() => chat.setMessages([])} disabled={chat.messages.length === 0} data-testid="chat-clear">
            New chat
          </button>
        </div>
      </header>

      <section className="messages" aria-live="polite" data-testid="messages">
        {chat.messages.length === 0 && (
          <div className="empty">
            <h2>Ask anything</h2>
            <p className="muted">Answers stream word by word. Each shows the tokens it used and what it cost.</p>
            <div className="suggestions">
              {(toolsOn ? [TOOL_SUGGESTION, ...SUGGESTIONS] : SUGGESTIONS).map((s) => (
                <button key={s} className="chip" onClick={() => void chat.send(s)} disabled={!model || busy}>
                  {s}
                </button>
              ))}
            </div>
          </div>
        )}
        {chat.messages.map((m, i) => (
          <MessageBubble key={m.id} message={m} streaming={busy && i === chat.messages.length - 1 && m.role === 'assistant' && m.finishReason === undefined} />
        ))}
        {pending && (
          <div className="bubble-row assistant">
            <div className="bubble assistant pending" data-testid="answer-pending">
              <span className="dots" aria-label="Waiting for the answer">
                <i />
                <i />
                <i />
              </span>
            </div>
          </div>
        )}
        {chat.status === 'error' && chat.error && <ChatErrorBanner error={chat.error} retryAfterMs={chat.retryAfterMs} />}
        <div ref={endRef} />
      </section>

      <Composer busy={busy} disabled={!model} onSend={(text, images) => void chat.send(text, { images })} onStop={chat.stop} />
    </div>
  );
}
