import { useState, type FormEvent } from 'react';
import { Logo } from '../ui/Logo';
import { mintDemoToken, type DemoRole, type DemoSession } from './DemoSession';

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,40}$/;

export function LoginScreen({ onSignedIn }: { onSignedIn: (session: DemoSession) => void }) {
  const [name, setName] = useState('alice');
  const [role, setRole] = useState<DemoRole>('user');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const valid = NAME_PATTERN.test(name);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!valid) return;
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await mintDemoToken(name, role));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form className="login-card" onSubmit={submit} data-testid="login-form">
        <div className="login-brand">
          <Logo size={40} />
          <div>
            <h1>Keyrack</h1>
            <p className="muted">One typed gateway, every provider, shared key pools.</p>
          </div>
        </div>
        <span className="badge badge-demo">Demo mode</span>
        <label className="field">
          <span>User name</span>
          <input
            data-testid="login-name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            autoComplete="username"
            aria-invalid={!valid}
          />
          {!valid && <small className="field-error">Letters, digits, dot, dash or underscore (up to 40).</small>}
        </label>
        <fieldset className="field">
          <legend>Role</legend>
          <div className="segmented" role="radiogroup">
            {(['user', 'admin'] as const).map((r) => (
              <label key={r} className={role === r ? 'segment active' : 'segment'}>
                <input type="radio" name="role" value={r} checked={role === r} onChange={() => setRole(r)} data-testid={`login-role-${r}`} />
                <strong>{r === 'user' ? 'User' : 'Admin'}</strong>
                <small>{r === 'user' ? 'Chat and bring your own keys' : 'Also watch and manage the key pool'}</small>
              </label>
            ))}
          </div>
        </fieldset>
        {error && (
          <p className="alert alert-error" role="alert">
            {error}
          </p>
        )}
        <button className="btn btn-primary btn-block" type="submit" disabled={busy || !valid} data-testid="login-submit">
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="muted small">The demo mints a short-lived token through <code>/dev/token</code>, which only exists in demo mode without <code>JWT_SECRET</code>.</p>
      </form>
    </main>
  );
}
