import { useRef, useState, type ChangeEvent, type FormEvent, type KeyboardEvent } from 'react';
import { readImageFile } from './readImageFile';

const MAX_ATTACHMENTS = 4;

export function Composer({ busy, disabled, onSend, onStop }: { busy: boolean; disabled: boolean; onSend: (text: string, images: string[]) => void; onStop: () => void }) {
  const [text, setText] = useState('');
  const [images, setImages] = useState<string[]>([]);
  const [attachError, setAttachError] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const canSend = !busy && !disabled && (text.trim() !== '' || images.length > 0);

  function submit(event?: FormEvent) {
    event?.preventDefault();
    if (!canSend) return;
    onSend(text, images);
    setText('');
    setImages([]);
    setAttachError(null);
  }
  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  }
  async function onFiles(event: ChangeEvent<HTMLInputElement>) {
    const files = [...(event.target.files ?? [])];
    event.target.value = '';
    const added: string[] = [];
    let reason: string | null = null;
    for (const file of files) {
      if (images.length + added.length >= MAX_ATTACHMENTS) {
        reason = `At most ${MAX_ATTACHMENTS} images per message.`;
        break;
      }
      const read = await readImageFile(file);
      if (read.ok) added.push(read.url);
      else reason = read.reason;
    }
    setImages((current) => [...current, ...added]);
    setAttachError(reason);
  }

  return (
    <form className="composer-wrap" onSubmit={submit}>
      {(images.length > 0 || attachError) && (
        <div className="attachments">
          {images.map((url, i) => (
            <span key={url.slice(-32) + i} className="attachment" data-testid="chat-attachment">
              <img src={url} alt={`Attached image ${i + 1}`} />
              <button type="button" className="attachment-remove" onClick={() => setImages(images.filter((_, j) => j !== i))} aria-label={`Remove image ${i + 1}`}>
                ×
              </button>
            </span>
          ))}
          {attachError && (
            <span className="attach-error" role="alert" data-testid="chat-attach-error">
              {attachError}
            </span>
          )}
        </div>
      )}
      <div className="composer">
        <input ref={fileInput} type="file" accept="image/png,image/jpeg,image/gif,image/webp" multiple hidden onChange={(e) => void onFiles(e)} data-testid="chat-attach-input" />
        <button type="button" className="btn btn-ghost btn-icon" onClick={() => fileInput.current?.click()} disabled={busy || disabled} aria-label="Attach an image" title="Attach an image" data-testid="chat-attach">
          <svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" strokeLinejoin="round">
            <rect x="1.5" y="2.5" width="13" height="11" rx="2" />
            <circle cx="5.5" cy="6.5" r="1.3" />
            <path d="M14.5 11 10.5 7.5 3 13.5" />
          </svg>
        </button>
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
      </div>
    </form>
  );
}
