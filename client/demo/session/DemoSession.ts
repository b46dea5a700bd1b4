import { z } from 'zod';

export const demoRoleSchema = z.enum(['user', 'admin']);
export type DemoRole = z.infer<typeof demoRoleSchema>;

const sessionSchema = z.object({ name: z.string().min(1), role: demoRoleSchema, token: z.string().min(1) });
export type DemoSession = z.infer<typeof sessionSchema>;

const STORAGE_KEY = 'keyrack.demo.session';

/** The demo keeps its token in sessionStorage: one tab, gone when it closes. */
export function loadSession(): DemoSession | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    const parsed = raw ? sessionSchema.safeParse(JSON.parse(raw)) : null;
    return parsed?.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export function saveSession(session: DemoSession | null): void {
  if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE_KEY);
}

const tokenResponseSchema = z.object({ token: z.string().min(1) });

/** Mints a token through the gateway's demo-only endpoint (it does not exist outside demo mode). */
export async function mintDemoToken(name: string, role: DemoRole): Promise<DemoSession> {
  const response = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: name, role }),
  });
  if (response.status === 404) throw new Error('This gateway mints no demo tokens (not in demo mode, or JWT_SECRET is set): sign in with a token from your identity provider or npm run token.');
  if (!response.ok) throw new Error(`Could not sign in (HTTP ${response.status}).`);
  const { token } = tokenResponseSchema.parse(await response.json());
  return { name, role, token };
}
