// The one way the page talks to mgmtd: the public API, with the session's
// token kept in this module's memory only (never a cookie or storage), so a
// reload logs out and no other page can make the browser use it.

let token = '';
let onLogout = () => {};

export function setToken(t) { token = t; }
export function hasToken() { return token !== ''; }
export function token_() { return token; }
export function whenLoggedOut(fn) { onLogout = fn; }
// endSession forgets the token and goes back to the login page saying why
// (a password change or a restart of mgmtd ended every session).
export function endSession(why) { token = ''; onLogout(why); }

// Problem is an RFC 9457 problem from the API: detail, the field at fault,
// and every field's problem.
export class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || ('HTTP ' + status));
    this.status = status;
    this.field = body.field || '';
    this.problems = body.problems || (body.field ? [{ field: body.field, message: body.detail || '' }] : []);
  }
  // byField maps each named field to its message; '' holds the rest.
  byField() {
    const m = {};
    for (const p of this.problems) m[p.field || ''] = p.message;
    if (this.problems.length === 0) m[''] = this.message;
    return m;
  }
}

async function problemOf(res) {
  let body = {};
  try { body = await res.json(); } catch { body = { detail: res.status + ' ' + res.statusText }; }
  return new Problem(res.status, body);
}

// request calls the API: JSON in and out, a Problem on failure. A 401 on a
// token that was good ends the session, unless the problem names a field
// (a wrong root password typed into a form, as turning lockdown off asks).
export async function request(method, path, body, opts = {}) {
  const headers = { 'Authorization': 'Bearer ' + token };
  const init = { method, headers, signal: opts.signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Problem(0, { detail: 'cannot reach the host: ' + e.message });
  }
  if (!res.ok) {
    const p = await problemOf(res);
    if (res.status === 401 && token && !p.field) { token = ''; onLogout(p.message); }
    throw p;
  }
  if (res.status === 204) return null;
  const ct = res.headers.get('Content-Type') || '';
  return ct.includes('json') ? res.json() : res.text();
}

export const get = (p, o) => request('GET', p, undefined, o);
export const post = (p, b) => request('POST', p, b);
export const put = (p, b) => request('PUT', p, b);
export const del = (p) => request('DELETE', p);

export async function login(user, password) {
  const res = await fetch('/api/v1/sessions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user, password }),
  }).catch(e => { throw new Problem(0, { detail: 'cannot reach the host: ' + e.message }); });
  if (!res.ok) throw await problemOf(res);
  const s = await res.json();
  token = s.token;
  return s;
}

// logout forgets the token at once, then asks the host to end the session
// (the page holds no token while the answer is on its way), waiting for
// the answer at most 5 s.
export async function logout() {
  const t = token;
  token = '';
  await fetch('/api/v1/sessions/current', { method: 'DELETE', headers: { 'Authorization': 'Bearer ' + t }, signal: AbortSignal.timeout(5000) })
    .catch(() => { /* the host is unreachable; the session ends at its expiry */ });
}

// events follows the server-sent event stream with fetch (EventSource
// cannot send the token), calling fn with each api.Event, and reconnects
// after a pause until stop is called. onState(true/false) tells whether the
// stream is live.
export function events(fn, onState = () => {}) {
  const ctl = new AbortController();
  let stopped = false;
  (async () => {
    while (!stopped) {
      try {
        const res = await fetch('/api/v1/events', { headers: { 'Authorization': 'Bearer ' + token }, signal: ctl.signal });
        if (!res.ok) throw await problemOf(res);
        onState(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            const data = block.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).trim()).join('\n');
            if (data) { try { fn(JSON.parse(data)); } catch { /* not an event */ } }
          }
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof Problem && e.status === 401) { stopped = true; onState(false); return; }
      }
      onState(false);
      if (!stopped) await new Promise(r => setTimeout(r, 2000));
    }
  })();
  return () => { stopped = true; ctl.abort(); };
}

// upload streams a file to a datastore with XMLHttpRequest (fetch has no
// upload progress): onProgress(sent, total); the answer's abort() cancels.
export function upload(ds, path, file, onProgress, overwrite = false) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open('PUT', `/api/v1/datastores/${encodeURIComponent(ds)}/content?path=${encodeURIComponent(path)}${overwrite ? '&overwrite=true' : ''}`);
    xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = e => onProgress(e.loaded, e.total || file.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { resolve(JSON.parse(xhr.responseText || 'null')); return; }
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { body = { detail: 'HTTP ' + xhr.status }; }
      reject(new Problem(xhr.status, body));
    };
    xhr.onerror = () => reject(new Problem(0, { detail: 'the upload failed: the connection broke' }));
    xhr.onabort = () => reject(new Problem(0, { detail: 'cancelled' }));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

// download fetches a file with the token and hands it to the browser as a
// download (a plain link cannot carry the token).
// The server's file name (Content-Disposition) wins over name; it answers
// the name and size saved.
export async function download(path, name) {
  const res = await fetch(path, { headers: { 'Authorization': 'Bearer ' + token } });
  if (!res.ok) throw await problemOf(res);
  const m = (res.headers.get('Content-Disposition') || '').match(/filename="([^"/\\]+)"/);
  if (m) name = m[1];
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url; a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return { name, size: blob.size };
}

// wsURL is the address of a VM's console websocket, with a single-use
// ticket for it (POST /api/v1/tickets): a browser cannot send the token as
// a header there, and a token in a URL would end up in logs.
export async function wsURL(vm, kind) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const p = `/api/v1/vms/${encodeURIComponent(vm)}/${kind}/ws`;
  const t = await post('/api/v1/tickets', { path: p });
  return `${proto}//${location.host}${p}?ticket=${encodeURIComponent(t.ticket)}`;
}

export const enc = encodeURIComponent;
