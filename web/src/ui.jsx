// Small pieces every page uses: routing, forms whose errors sit beside the
// field the API names, sizes, dialogs.
import { useState, useEffect, useRef } from 'preact/hooks';
import { cloneElement, h } from 'preact';
import { Problem } from './api.js';

// Routing: the address bar's path is the page; links are plain <a> whose
// clicks are kept in the page.
const listeners = new Set();
export function navigate(to) {
  if (to !== location.pathname + location.search) history.pushState(null, '', to);
  listeners.forEach(fn => fn());
}
window.addEventListener('popstate', () => listeners.forEach(fn => fn()));
export function usePath() {
  const [p, setP] = useState(location.pathname);
  useEffect(() => { const fn = () => setP(location.pathname); listeners.add(fn); return () => listeners.delete(fn); }, []);
  return p;
}
export function Link({ href, children, onClick, ...rest }) {
  return <a href={href} {...rest} onClick={e => {
    if (onClick) onClick(e);
    if (e.button === 0 && !e.ctrlKey && !e.metaKey && !e.shiftKey) { e.preventDefault(); navigate(href); }
  }}>{children}</a>;
}

// useForm keeps a form's values and the problems the API answered with:
// errs[field] is the message beside that field, errs[''] the rest.
export function useForm(initial) {
  const [v, setV] = useState(initial);
  const [errs, setErrs] = useState({});
  const [busy, setBusy] = useState(false);
  const set = (k, val) => setV(old => ({ ...old, [k]: val }));
  async function submit(fn, fields = []) {
    setBusy(true); setErrs({});
    try { return await fn(v); } catch (e) {
      setErrs(placeProblems(e, fields));
      throw e;
    } finally { setBusy(false); }
  }
  return { v, set, setV, errs, setErrs, busy, submit };
}

// placeProblems puts each field's message beside the input that shows the
// field (or its nearest shown prefix: disks[0].path beside disks[0]); the
// ones no input shows go to the top, naming their field.
export function placeProblems(e, fields) {
  if (!(e instanceof Problem)) return { '': String(e.message || e) };
  const out = {};
  const add = (k, m) => { out[k] = out[k] ? out[k] + '; ' + m : m; };
  if (e.problems.length === 0) { add(fields.includes(e.field) ? e.field : '', e.message); return out; }
  for (const p of e.problems) {
    let f = p.field;
    while (f && !fields.includes(f)) {
      const cut = Math.max(f.lastIndexOf('.'), f.lastIndexOf('['));
      f = cut > 0 ? f.slice(0, cut) : '';
    }
    add(f, f || !p.field ? p.message : `${p.field}: ${p.message}`);
  }
  if (!Object.keys(out).length) add('', e.message);
  return out;
}

let ids = 0;
// Field is a labelled input with its problem below it (aria-describedby, so
// a screen reader says both).
export function Field({ label, name, errs, children, hint }) {
  const id = useRef('f' + (++ids)).current;
  const err = errs && errs[name];
  const child = children && children.type ? cloneElement(children, { id, name, 'aria-invalid': err ? 'true' : undefined, 'aria-describedby': err ? id + '-err' : undefined }) : children;
  return (
    <div class={'field' + (err ? ' has-error' : '')}>
      <label for={id}>{label}</label>
      {child}
      {hint && <small class="hint">{hint}</small>}
      {err && <div class="error" id={id + '-err'} role="alert" data-field={name}>{err}</div>}
    </div>
  );
}

export function FormError({ errs }) {
  return errs && errs[''] ? <div class="error banner" role="alert">{errs['']}</div> : null;
}

export function bytes(n) {
  if (n == null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + ' ' + u[i];
}

export function Progress({ value, max, label }) {
  const pct = max ? Math.min(100, Math.round(value * 100 / max)) : 0;
  return <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow={pct} aria-label={label}><div style={{ width: pct + '%' }} /><span>{pct}%</span></div>;
}

// Modal is a dialog that takes the focus and gives it back; Escape closes.
export function Modal({ title, onClose, children }) {
  const ref = useRef();
  useEffect(() => {
    const prev = document.activeElement;
    const el = ref.current.querySelector('input,select,textarea,button');
    (el || ref.current).focus();
    const key = e => { if (e.key === 'Escape') onClose(); };
    document.addEventListener('keydown', key);
    return () => { document.removeEventListener('keydown', key); prev && prev.focus && prev.focus(); };
  }, []);
  return (
    <div class="modal-back" onClick={e => { if (e.target === e.currentTarget) onClose(); }}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={title} ref={ref} tabIndex="-1">
        <h2>{title}</h2>
        {children}
      </div>
    </div>
  );
}

export function useAsync(fn, deps) {
  const [state, setState] = useState({ loading: true });
  const load = () => fn().then(data => setState({ data }), error => setState({ error }));
  useEffect(() => { setState(s => ({ ...s, loading: true })); load(); }, deps);
  return [state, load];
}

export function when(t) { return t ? new Date(t).toLocaleString() : ''; }

// lazy is a component whose code loads when it is first drawn (the
// consoles and charts: most of the client's bytes, none of them needed to
// log in or list VMs).
export function lazy(load, name) {
  let C = null;
  let p = null;
  return function Lazy(props) {
    const [, loaded] = useState(0);
    const [err, setErr] = useState('');
    useEffect(() => {
      if (C) return;
      if (!p) p = load().then(m => { C = m[name]; });
      p.then(() => loaded(1), e => setErr(String(e.message || e)));
    }, []);
    if (err) return <p class="error" role="alert">Could not load this part of the page: {err}</p>;
    return C ? h(C, props) : <p>Loading…</p>;
  };
}
