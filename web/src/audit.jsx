// The audit log: every change and every login, newest first.
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { when } from './ui.jsx';

export function Audit() {
  const [rows, setRows] = useState(null);
  const [err, setErr] = useState('');
  const [limit, setLimit] = useState(200);
  useEffect(() => { api.get('/api/v1/audit?limit=' + limit).then(r => setRows((r || []).reverse()), e => setErr(e.message)); }, [limit]);
  return (
    <section aria-labelledby="audit-h">
      <div class="toolbar"><h1 id="audit-h">Audit log</h1>
        <label>Show <select value={limit} onChange={e => setLimit(Number(e.target.value))}>{[200, 1000, 10000].map(n => <option value={n}>{n}</option>)}</select> newest</label></div>
      {err && <p class="error" role="alert">{err}</p>}
      {rows && <table class="list" aria-label="Audit log">
        <thead><tr><th>Time</th><th>User</th><th>From</th><th>Action</th><th>Target</th><th>Status</th><th>Problem</th></tr></thead>
        <tbody>{rows.map(r => <tr class={r.status >= 400 ? 'failed' : ''}><td>{when(r.time)}</td><td>{r.user}</td><td>{r.remote}</td><td>{r.action}</td><td class="mono">{r.target}</td><td>{r.status}</td><td>{r.detail}</td></tr>)}</tbody>
      </table>}
    </section>
  );
}
