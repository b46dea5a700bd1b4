import { useState, type ReactNode } from 'react';
import type { DemoSession } from '../session/DemoSession';
import { Logo } from './Logo';

export type Page = 'chat' | 'admin' | 'byok';

const NAV: { page: Page; label: string; adminOnly?: boolean; icon: ReactNode }[] = [
  {
    page: 'chat',
    label: 'Chat',
    icon: <path d="M4 5h16v10H9l-5 4z" />,
  },
  {
    page: 'byok',
    label: 'My API keys',
    icon: <path d="M14 10a4 4 0 1 0-3.5 4L8 16.5V19h2.5v-2H13v-2.5zM16 8h.01" />,
  },
  {
    page: 'admin',
    label: 'Key pool',
    adminOnly: true,
    icon: <path d="M4 19V9M10 19V5M16 19v-7M22 19H2" />,
  },
];

/** The app frame: a sidebar on laptops, a top bar with a menu on phones. */
export function Shell({ session, page, onSignOut, children }: { session: DemoSession; page: Page; onSignOut: () => void; children: ReactNode }) {
  const [menuOpen, setMenuOpen] = useState(false);
  const items = NAV.filter((item) => !item.adminOnly || session.role === 'admin');
  return (
    <div className="shell">
      <aside className={menuOpen ? 'sidebar open' : 'sidebar'}>
        <div className="sidebar-head">
          <a className="brand" href="#/chat">
            <Logo />
            <span>Keyrack</span>
          </a>
          <button className="btn btn-ghost menu-toggle" aria-label="Menu" aria-expanded={menuOpen} onClick={() => setMenuOpen((o) => !o)} data-testid="menu-toggle">
            <svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round">
              {menuOpen ? <path d="M6 6l12 12M18 6L6 18" /> : <path d="M4 7h16M4 12h16M4 17h16" />}
            </svg>
          </button>
        </div>
        <nav className="nav" onClick={() => setMenuOpen(false)}>
          {items.map((item) => (
            <a key={item.page} href={`#/${item.page}`} className={page === item.page ? 'nav-item active' : 'nav-item'} data-testid={`nav-${item.page}`} aria-current={page === item.page ? 'page' : undefined}>
              <svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
                {item.icon}
              </svg>
              {item.label}
            </a>
          ))}
        </nav>
        <div className="sidebar-foot">
          <div className="who">
            <span className="avatar" aria-hidden="true">
              {session.name.slice(0, 1).toUpperCase()}
            </span>
            <div>
              <strong data-testid="session-name">{session.name}</strong>
              <small className={`role role-${session.role}`}>{session.role}</small>
            </div>
          </div>
          <button className="btn btn-ghost btn-sm" onClick={onSignOut} data-testid="sign-out">
            Sign out
          </button>
        </div>
      </aside>
      <main className="content">{children}</main>
    </div>
  );
}
