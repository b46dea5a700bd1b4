import { useState, type FormEvent, type KeyboardEvent } from 'react';

export function Composer({ busy, disabled, onSend, onStop }: { busy: boolean; disabled: boolean; onSend: (text: string) => void; onStop: () => void }) {
  const [text, setText] = useState('');
  const canSend = !busy && !disabled && text.trim() !== '';

  function submit(event?: FormEvent) {
    event?.preventDefault();
    if (!canSend) return;
    onSend(text);
    setText('');
  }
  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  }

  return (
    <form className="composer" onSubmit={submit}>
      <textarea
        data-testid="chat-input"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        placeholder="Message Keyrack…"
        rows={1}
        aria-label="Message"
      />
      {busy ? (
        <button key="stop" type="button" className="btn btn-danger" onClick={onStop} data-testid="chat-stop">
          <svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">
            <rect width="14" height="14" rx="2" fill="currentColor" />
          </svg>
          Stop
        </button>
      ) : (
        <button key="send" type="submit" className="btn btn-primary" disabled={!canSend} data-testid="chat-send">
          Send
        </button>
      )}
    </form>
  );
}
