import { useState, type FormEvent } from 'react';
import { PROVIDERS, type ProviderId } from '../../../shared';
import { useByokKeys, useByokSettings, useUsage, type ByokKeyInfo, type ByokTestOutput } from '../../sdk';
import { formatCount, formatUsd } from '../ui/format';

const DISPLAY_NAME = new Map<string, string>(PROVIDERS.map((p) => [p.id, p.displayName]));

type TestResult = ByokTestOutput['result'];
const RESULT_PILL: Record<TestResult, string> = { valid: 'ok', rejected: 'disabled', unreachable: 'cooling', corrupt: 'disabled' };
const RESULT_TEXT: Record<TestResult, (name: string) => string> = {
  valid: (name) => `${name} accepted the key.`,
  rejected: (name) => `${name} rejected the key. Check it or remove it.`,
  unreachable: (name) => `${name} could not be reached; the key was not judged. Try again later.`,
  corrupt: () => 'The stored key could not be decrypted, so it is not used. Remove it and add it again.',
};

type Notice = { kind: 'ok' | 'error' | 'warning'; text: string };

export function ByokPage() {
  const byok = useByokKeys();
  const [provider, setProvider] = useState<ProviderId>('openai');
  const [apiKey, setApiKey] = useState('');
  const [label, setLabel] = useState('');
  const [notice, setNotice] = useState<Notice | null>(null);
  const [rowNotice, setRowNotice] = useState<{ id: string } & Notice>();

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

  async function test(k: ByokKeyInfo) {
    const name = DISPLAY_NAME.get(k.provider) ?? k.provider;
    try {
      const { result } = await byok.test(k.id);
      setRowNotice({ id: k.id, kind: result === 'valid' ? 'ok' : result === 'unreachable' ? 'warning' : 'error', text: `${k.mask}: ${RESULT_TEXT[result](name)}` });
    } catch (e) {
      setRowNotice({ id: k.id, kind: 'error', text: `${k.mask}: ${e instanceof Error ? e.message : String(e)}` });
    }
  }

  async function remove(k: ByokKeyInfo) {
    try {
      await byok.remove(k.id);
      setRowNotice({ id: k.id, kind: 'ok', text: `Removed ${k.mask}. Requests no longer use it.` });
    } catch (e) {
      setRowNotice({ id: k.id, kind: 'error', text: `${k.mask}: ${e instanceof Error ? e.message : String(e)}` });
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

      <UsageToday />

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
          <p className={`alert alert-${notice.kind}`} role="status" data-testid="byok-notice">
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
        {rowNotice && (
          <p className={`alert alert-${rowNotice.kind}`} role="status" data-testid="byok-row-notice">
            {rowNotice.text}
          </p>
        )}
        {!byok.isLoading && byok.keys.length === 0 && <p className="muted empty-list">No keys yet. Requests use the shared pool.</p>}
        {byok.keys.length > 0 && (
          <table className="keys byok-keys">
            <thead>
              <tr>
                <th>Key</th>
                <th>Provider</th>
                <th>Added</th>
                <th>Status</th>
                <th aria-label="Actions" />
              </tr>
            </thead>
            <tbody>
              {byok.keys.map((k) => (
                <ByokRow key={k.id} k={k} busy={byok.busyIds.has(k.id)} onTest={() => void test(k)} onRemove={() => void remove(k)} />
              ))}
            </tbody>
          </table>
        )}
        <FallbackSetting />
      </section>
    </div>
  );
}

function ByokRow({ k, busy, onTest, onRemove }: { k: ByokKeyInfo; busy: boolean; onTest: () => void; onRemove: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const result: TestResult | null = k.status === 'corrupt' ? 'corrupt' : (k.lastTest?.result ?? null);
  return (
    <tr data-testid={`byok-row-${k.id}`} className="byok-row" data-result={result ?? 'untested'}>
      <td data-label="Key">
        <code className="mask" data-testid="byok-mask">
          {k.mask}
        </code>
        {k.label && (
          <small className="muted account" data-testid="byok-row-label">
            {k.label}
          </small>
        )}
      </td>
      <td data-label="Provider">{DISPLAY_NAME.get(k.provider) ?? k.provider}</td>
      <td data-label="Added">
        <small>{new Date(k.createdAt).toLocaleDateString(undefined, { dateStyle: 'medium' })}</small>
      </td>
      <td data-label="Status">
        {result ? (
          <span className={`pill pill-${RESULT_PILL[result]}`} data-testid="byok-result" title={k.lastTest ? `Tested ${new Date(k.lastTest.at).toLocaleString()}` : undefined}>
            {result}
          </span>
        ) : (
          <small className="muted" data-testid="byok-result">
            not tested
          </small>
        )}
      </td>
      <td className="actions">
        <button className="btn btn-sm btn-secondary" disabled={busy} onClick={onTest} data-testid="byok-test">
          {busy ? 'Working…' : 'Test'}
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

/** Whether requests fall back to the shared pool when none of the user's own keys can serve. */
function FallbackSetting() {
  const { settings, save, saving, error } = useByokSettings();
  if (!settings) return null;
  return (
    <div className="byok-setting">
      <label className="check">
        <input
          type="checkbox"
          checked={settings.fallbackToSharedPool}
          disabled={saving}
          onChange={(e) => void save({ fallbackToSharedPool: e.target.checked }).catch(() => {})}
          data-testid="byok-fallback"
        />
        <span>When my keys can't serve a request, use the shared pool (billed) instead of failing.</span>
      </label>
      {error && <p className="alert alert-error">{error.message}</p>}
    </div>
  );
}

function UsageToday() {
  const usage = useUsage();
  const u = usage.data;
  return (
    <div className="stats usage-today" data-testid="usage-today">
      <div className="stat">
        <small>Requests today</small>
        <strong data-testid="usage-requests">{u ? formatCount(u.requests) : '–'}</strong>
      </div>
      <div className="stat">
        <small>Tokens in / out</small>
        <strong>{u ? `${formatCount(u.inputTokens)} / ${formatCount(u.outputTokens)}` : '–'}</strong>
      </div>
      <div className="stat">
        <small>Cost today</small>
        <strong data-testid="usage-cost">{u ? formatUsd(u.costUsd) : '–'}</strong>
      </div>
    </div>
  );
}
