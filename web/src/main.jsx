// The Plinth host client: login, then the host, its VMs, storage and
// networking, with recent tasks and events always at the bottom.
import { render } from 'preact';
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { Link, usePath, navigate, useForm, Field, FormError, lazy } from './ui.jsx';
import { VMList, VMPage, VMCreate } from './vms.jsx';

import { Storage } from './storage.jsx';
import { Networking } from './network.jsx';
import { HostPage } from './host.jsx';
import { Audit } from './audit.jsx';
import { RecentBar, startFeed } from './tasks.jsx';
// The libraries' styles are in the page's one stylesheet; their code loads
// with the console or the charts.
import '@xterm/xterm/css/xterm.css';
import 'uplot/dist/uPlot.min.css';
import './app.css';

const ConsoleWindow = lazy(() => import('./console.jsx'), 'ConsoleWindow');
const Settings = lazy(() => import('./settings.jsx'), 'Settings');

function Login({ onIn, reason }) {
  const [hostname, setHostname] = useState('');
  const f = useForm({ user: 'root', password: '' });
  // for the figures in docs/PERFORMANCE.md (effects run once drawn)
  useEffect(() => { performance.mark('plinth-login-drawn'); }, []);
  useEffect(() => {
    fetch('/healthz').then(r => r.json()).then(h => setHostname(h.hostname || '')).catch(() => {});
  }, []);
  async function go(e) {
    e.preventDefault();
    try { const s = await f.submit(v => api.login(v.user, v.password), ['user', 'password']); onIn(s); } catch { /* shown */ }
  }
  return (
    <main class="login">
      <form onSubmit={go} aria-label="Log in">
        <h1>Plinth{hostname && <span class="hostname"> {hostname}</span>}</h1>
        {reason && <p class="notice" role="status">{reason}</p>}
        <FormError errs={f.errs} />
        <Field label="User" name="user" errs={f.errs}><input value={f.v.user} onInput={e => f.set('user', e.target.value)} autocomplete="username" /></Field>
        <Field label="Password" name="password" errs={f.errs}><input type="password" value={f.v.password} onInput={e => f.set('password', e.target.value)} autocomplete="current-password" autofocus /></Field>
        <button type="submit" disabled={f.busy}>Log in</button>
      </form>
    </main>
  );
}

const nav = [['/host', 'Host'], ['/settings', 'Host settings'], ['/vms', 'Virtual machines'], ['/storage', 'Storage'], ['/networking', 'Networking'], ['/audit', 'Audit log']];

function Shell({ who, onOut }) {
  const path = usePath();
  const [menu, setMenu] = useState(false);
  let page;
  let m;
  if (path === '/' || path === '/host') page = <HostPage />;
  else if (path === '/vms') page = <VMList />;
  else if (path === '/vms/new') page = <VMCreate />;
  else if ((m = path.match(/^\/vms\/([^/]+)$/))) page = <VMPage id={decodeURIComponent(m[1])} />;
  else if (path.startsWith('/storage')) page = <Storage path={path} />;
  else if (path === '/networking') page = <Networking />;
  else if (path === '/settings') page = <Settings />;
  else if (path === '/audit') page = <Audit />;
  else page = <p>No page here. <Link href="/host">The host</Link>.</p>;
  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to the page</a>
      <header>
        <span class="brand">Plinth <span class="hostname">{who.hostname}</span></span>
        <button class="menu-toggle" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>Menu</button>
        <nav id="nav" class={menu ? 'open' : ''} aria-label="Pages">
          {nav.map(([href, label]) => <Link href={href} aria-current={path.startsWith(href) || (path === '/' && href === '/host') ? 'page' : undefined} onClick={() => setMenu(false)}>{label}</Link>)}
        </nav>
        <span class="who">{who.user}{who.lockdown && <strong class="lockdown"> lockdown</strong>}</span>
        <button onClick={onOut} id="logout">Log out</button>
      </header>
      <main id="main" tabIndex="-1">{page}</main>
      <RecentBar />
    </div>
  );
}

function App() {
  const [who, setWho] = useState(null);
  const [reason, setReason] = useState('');
  useEffect(() => {
    api.whenLoggedOut(msg => { setWho(null); setReason('Your session ended: ' + msg); });
  }, []);
  useEffect(() => {
    if (!who) return;
    return startFeed();
  }, [who]);
  async function loggedIn() {
    const [w, h] = await Promise.all([api.get('/api/v1/sessions/current'), api.get('/api/v1/host').catch(() => ({}))]);
    setReason('');
    setWho({ ...w, hostname: h.hostname || '' });
  }
  // A page that changed what the header shows (lockdown) asks for it again.
  useEffect(() => {
    const fn = () => api.get('/api/v1/sessions/current').then(w => setWho(old => old && { ...old, ...w }), () => {});
    window.addEventListener('plinth:who', fn);
    return () => window.removeEventListener('plinth:who', fn);
  }, []);
  async function out() {
    await api.logout();
    setWho(null); setReason('Logged out.');
    navigate('/');
  }
  if (!who) return <Login onIn={loggedIn} reason={reason} />;
  return <Shell who={who} onOut={out} />;
}

// A console in a window of its own (opened from a VM's page) borrows the
// session of the window that opened it: the token never leaves memory.
const cm = location.pathname.match(/^\/console\/([^/]+)\/(serial|vnc)$/);
const root = document.getElementById('app');
if (cm) {
  let t = '';
  try { t = window.opener && window.opener.plinthToken ? window.opener.plinthToken() : ''; } catch { t = ''; }
  api.setToken(t);
  render(t ? <ConsoleWindow id={decodeURIComponent(cm[1])} kind={cm[2]} /> : <p class="notice">Open this console from a VM's page in the host client (its session is not shared with a new tab).</p>, root);
} else {
  window.plinthToken = () => api.hasToken() ? api.token_() : '';
  render(<App />, root);
}
