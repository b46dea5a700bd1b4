import { useState, type FormEvent } from 'react';
import { PROVIDERS, type ProviderId } from '../../../shared';
import { useByokKeys, type ByokKeyInfo } from '../../sdk';

const DISPLAY_NAME = new Map<string, string>(PROVIDERS.map((p) => [p.id, p.displayName]));
const RESULT_TEXT = { valid: 'valid', rejected: 'rejected', unreachable: 'unreachable', corrupt: 'corrupt' } as const;

export function ByokPage() {
  const byok = useByokKeys();
  const [provider, setProvider] = useState<ProviderId>('openai');
  const [apiKey, setApiKey] = useState('');
  const [label, setLabel] = useState('');
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);

  async function add(event: FormEvent) {
    event.preventDefault();
    setNotice(null);
    try {
      const saved = await byok.add({ provider, apiKey: apiKey.trim(), ...(label.trim() ? { label: label.trim() } : {}) });
      // The plaintext leaves the page's state as soon as the gateway has it.
      setApiKey('');
      setLabel('');
      setNotice({ kind: 'ok', text: `Saved ${saved.mask}. The key itself is stored encrypted and never shown again.` });
    } catch (e) {
      setNotice({ kind: 'error', text: e instanceof Error ? e.message : String(e) });
    }
  }

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>My API keys</h1>
          <p className="muted">Bring your own provider keys: your requests use them first, before the shared pool.</p>
        </div>
      </header>

      <section className="card">
        <div className="card-head">
          <h2>Add a key</h2>
        </div>
        <form className="byok-form" onSubmit={add} autoComplete="off">
          <label className="field">
            <span>Provider</span>
            <select value={provider} onChange={(e) => setProvider(e.target.value as ProviderId)} data-testid="byok-provider">
              {PROVIDERS.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.displayName}
                </option>
              ))}
            </select>
          </label>
          <label className="field grow">
            <span>API key</span>
            <input type="password" value={apiKey} onChange={(e) => setApiKey(e.target.value)} placeholder="sk-…" autoComplete="off" spellCheck={false} data-testid="byok-key" />
          </label>
          <label className="field">
            <span>Label (optional)</span>
            <input value={label} onChange={(e) => setLabel(e.target.value)} maxLength={60} placeholder="e.g. personal" data-testid="byok-label" />
          </label>
          <button className="btn btn-primary" type="submit" disabled={byok.adding || apiKey.trim().length < 8} data-testid="byok-add">
            {byok.adding ? 'Saving…' : 'Add key'}
          </button>
        </form>
        {notice && (
          <p className={`alert ${notice.kind === 'ok' ? 'alert-ok' : 'alert-error'}`} role="status" data-testid="byok-notice">
            {notice.text}
          </p>
        )}
      </section>

      <section className="card">
        <div className="card-head">
          <h2>Your keys</h2>
          <small className="muted">{byok.keys.length} stored</small>
        </div>
        {byok.error && <p className="alert alert-error">{byok.error.message}</p>}
        {!byok.isLoading && byok.keys.length === 0 && <p className="muted empty-list">No keys yet. Requests use the shared pool.</p>}
        {byok.keys.length > 0 && (
          <table className="keys byok-keys">
            <thead>
              <tr>
                <th>Key</th>
                <th>Provider</th>
                <th>Added</th>
                <th>Last test</th>
                <th aria-label="Actions" />
              </tr>
            </thead>
            <tbody>
              {byok.keys.map((k) => (
                <ByokRow key={k.id} k={k} busy={byok.busyIds.has(k.id)} onTest={() => void byok.test(k.id).catch(() => {})} onRemove={() => void byok.remove(k.id).catch(() => {})} />
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}

function ByokRow({ k, busy, onTest, onRemove }: { k: ByokKeyInfo; busy: boolean; onTest: () => void; onRemove: () => void }) {
  const [confirming, setConfirming] = useState(false);
  return (
    <tr data-testid={`byok-row-${k.id}`} className="byok-row">
      <td data-label="Key">
        <code className="mask" data-testid="byok-mask">
          {k.mask}
        </code>
        {k.label && <small className="muted account">{k.label}</small>}
      </td>
      <td data-label="Provider">{DISPLAY_NAME.get(k.provider) ?? k.provider}</td>
      <td data-label="Added">
        <small>{new Date(k.createdAt).toLocaleDateString(undefined, { dateStyle: 'medium' })}</small>
      </td>
      <td data-label="Last test">
        {k.lastTest ? (
          <span className={`pill pill-${k.lastTest.result === 'valid' ? 'ok' : k.lastTest.result === 'unreachable' ? 'cooling' : 'disabled'}`} data-testid="byok-result">
            {RESULT_TEXT[k.lastTest.result]}
          </span>
        ) : (
          <small className="muted">not tested</small>
        )}
      </td>
      <td className="actions">
        <button className="btn btn-sm btn-secondary" disabled={busy} onClick={onTest} data-testid="byok-test">
          {busy ? 'Testing…' : 'Test'}
        </button>
        {confirming ? (
          <button className="btn btn-sm btn-danger" disabled={busy} onClick={onRemove} onBlur={() => setConfirming(false)} data-testid="byok-remove-confirm">
            Confirm
          </button>
        ) : (
          <button className="btn btn-sm btn-ghost-danger" disabled={busy} onClick={() => setConfirming(true)} data-testid="byok-remove">
            Remove
          </button>
        )}
      </td>
    </tr>
  );
}
