// Storage: the datastores with their space, and a file browser per
// datastore (folders, upload by drag and drop with progress and cancel,
// download, delete) with the disk operations (info, create, grow, convert).
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { Link, navigate, bytes, Progress, Modal, useForm, Field, FormError } from './ui.jsx';
import { refreshTasks } from './tasks.jsx';

export function Storage({ path }) {
  const m = path.match(/^\/storage\/([^/]+)(\/.*)?$/);
  if (m) return <Browser ds={decodeURIComponent(m[1])} dir={decodeURIComponent((m[2] || '/').slice(1)).replace(/\/$/, '')} />;
  return <Datastores />;
}

function Datastores() {
  const [dss, setDss] = useState(null);
  const [err, setErr] = useState('');
  useEffect(() => { api.get('/api/v1/datastores').then(d => setDss(d || []), e => setErr(e.message)); }, []);
  return (
    <section aria-labelledby="ds-h">
      <h1 id="ds-h">Datastores</h1>
      {err && <p class="error" role="alert">{err}</p>}
      {dss && dss.length === 0 && <p>This host has no datastore.</p>}
      {dss && dss.length > 0 && <table class="list" aria-label="Datastores">
        <thead><tr><th>Name</th><th>Capacity</th><th>Free</th><th>Used</th></tr></thead>
        <tbody>{dss.map(d => <tr><td><Link href={'/storage/' + api.enc(d.name)}>{d.name}</Link></td><td>{bytes(d.capacity_bytes)}</td><td>{bytes(d.free_bytes)}</td>
          <td><Progress value={d.capacity_bytes - d.free_bytes} max={d.capacity_bytes} label={'used space of ' + d.name} /></td></tr>)}</tbody>
      </table>}
    </section>
  );
}

const dsURL = (ds, what, p) => `/api/v1/datastores/${api.enc(ds)}/${what}?path=${api.enc(p)}`;

function Browser({ ds, dir }) {
  const [ents, setEnts] = useState(null);
  const [err, setErr] = useState('');
  const [uploads, setUploads] = useState([]);
  const [over, setOver] = useState(false);
  const [dialog, setDialog] = useState(null);
  const load = () => api.get(dsURL(ds, 'files', dir)).then(e => { setEnts(e || []); setErr(''); }, e => { setEnts([]); setErr(e.status === 404 ? 'This folder is empty: it is made by the first upload into it.' : e.message); });
  useEffect(() => { setEnts(null); load(); }, [ds, dir]);
  const join = n => (dir ? dir + '/' : '') + n;
  const go = p => navigate('/storage/' + api.enc(ds) + '/' + p.split('/').map(api.enc).join('/'));
  function send(files) {
    for (const file of files) {
      const up = { name: file.name, sent: 0, total: file.size, state: 'uploading', id: Math.random() };
      const u = api.upload(ds, join(file.name), file, (sent, total) => {
        up.sent = sent; up.total = total; setUploads(l => [...l]);
      });
      up.abort = u.abort;
      setUploads(l => [...l, up]);
      refreshTasks();
      u.done.then(() => { up.state = 'done'; up.sent = up.total; setUploads(l => [...l]); load(); refreshTasks(); },
        e => { up.state = e.message === 'cancelled' ? 'cancelled' : 'failed: ' + e.message; setUploads(l => [...l]); refreshTasks(); });
    }
  }
  async function remove(e) {
    if (!confirm(`Delete ${ds}:${join(e.name)}?`)) return;
    try { await api.del(dsURL(ds, 'files', join(e.name))); load(); } catch (x) { setErr(x.message); }
  }
  const crumbs = dir ? dir.split('/') : [];
  return (
    <section aria-labelledby="browse-h" class={'browser' + (over ? ' drop' : '')}
      onDragOver={e => { e.preventDefault(); setOver(true); }} onDragLeave={() => setOver(false)}
      onDrop={e => { e.preventDefault(); setOver(false); send([...e.dataTransfer.files]); }}>
      <div class="toolbar">
        <h1 id="browse-h"><Link href="/storage">Datastores</Link> / <Link href={'/storage/' + api.enc(ds)}>{ds}</Link>
          {crumbs.map((c, i) => <> / <Link href={'/storage/' + api.enc(ds) + '/' + crumbs.slice(0, i + 1).map(api.enc).join('/')}>{c}</Link></>)}</h1>
        <label class="button">Upload files<input type="file" multiple class="visually-hidden" id="upload-input" onChange={e => { send([...e.target.files]); e.target.value = ''; }} /></label>
        <button onClick={() => setDialog({ kind: 'folder' })}>New folder</button>
        <button onClick={() => setDialog({ kind: 'disk' })}>New disk</button>
      </div>
      <p class="hint">Drop files here to upload them into this folder.</p>
      {uploads.length > 0 && <ul class="uploads" aria-label="Uploads">
        {uploads.map(u => <li key={u.id}><span>{u.name}</span> <Progress value={u.sent} max={u.total} label={'upload of ' + u.name} />
          <span class="up-state">{u.state === 'uploading' ? bytes(u.sent) + ' of ' + bytes(u.total) : u.state}</span>
          {u.state === 'uploading' && <button onClick={() => u.abort()}>Cancel</button>}</li>)}
      </ul>}
      {err && <p class={ents && ents.length === 0 && err.startsWith('This folder') ? 'notice' : 'error'} role="alert">{err}</p>}
      {ents && <table class="list" aria-label="Files">
        <thead><tr><th>Name</th><th>Size</th><th>Format</th><th>Actions</th></tr></thead>
        <tbody>
          {ents.length === 0 && !err && <tr><td colSpan="4" class="empty">Empty folder.</td></tr>}
          {ents.sort((a, b) => (a.kind === 'dir' ? 0 : 1) - (b.kind === 'dir' ? 0 : 1) || a.name.localeCompare(b.name)).map(e => (
            <tr key={e.name}>
              <td>{e.kind === 'dir' ? <a href="#" onClick={x => { x.preventDefault(); go(join(e.name)); }}>{e.name}/</a> : e.name}</td>
              <td>{e.kind === 'dir' ? '' : bytes(e.size_bytes)}</td>
              <td>{e.format || ''}</td>
              <td class="actions">{e.kind === 'file' && <>
                <button onClick={() => api.download(dsURL(ds, 'content', join(e.name)), e.name).catch(x => setErr(x.message))}>Download</button>
                {(e.format === 'qcow2' || e.format === 'raw' || /\.(qcow2|img|raw)$/.test(e.name)) && <button onClick={() => setDialog({ kind: 'info', path: join(e.name) })}>Disk…</button>}
                <button class="danger" onClick={() => remove(e)}>Delete</button></>}</td>
            </tr>))}
        </tbody>
      </table>}
      {dialog && dialog.kind === 'folder' && <NewFolder onClose={() => setDialog(null)} onMade={n => { setDialog(null); go(join(n)); }} />}
      {dialog && dialog.kind === 'disk' && <NewDisk ds={ds} dir={dir} onClose={() => { setDialog(null); load(); }} />}
      {dialog && dialog.kind === 'info' && <DiskInfo ds={ds} path={dialog.path} onClose={() => { setDialog(null); load(); }} />}
    </section>
  );
}

// A new folder is made on the datastore by the first file put into it.
function NewFolder({ onClose, onMade }) {
  const f = useForm({ name: '' });
  function go(e) {
    e.preventDefault();
    const n = f.v.name.trim();
    if (!n || n.includes('/') || n === '.' || n === '..') { f.setErrs({ name: 'a folder name: not empty, no slash' }); return; }
    onMade(n);
  }
  return <Modal title="New folder" onClose={onClose}><form onSubmit={go}>
    <Field label="Name" name="name" errs={f.errs} hint="It appears on the datastore with the first upload into it."><input value={f.v.name} onInput={e => f.set('name', e.target.value)} /></Field>
    <div class="buttons"><button type="submit">Open it</button><button type="button" onClick={onClose}>Cancel</button></div></form></Modal>;
}

function NewDisk({ ds, dir, onClose }) {
  const f = useForm({ path: (dir ? dir + '/' : '') + 'disk.qcow2', size: '8', format: 'qcow2' });
  async function go(e) {
    e.preventDefault();
    try {
      await f.submit(v => api.post(`/api/v1/datastores/${api.enc(ds)}/disks`, { path: v.path, format: v.format, size_bytes: Math.round(Number(v.size) * 1073741824) })
        .catch(x => { if (x.field === 'size_bytes' || (x.problems || []).some(p => p.field === 'size_bytes')) x.problems = x.problems.map(p => p.field === 'size_bytes' ? { ...p, field: 'size' } : p); throw x; }), ['path', 'size', 'format']);
      onClose();
    } catch { /* beside the fields */ }
  }
  return <Modal title="New disk" onClose={onClose}><form onSubmit={go}>
    <FormError errs={f.errs} />
    <Field label="Path" name="path" errs={f.errs}><input value={f.v.path} onInput={e => f.set('path', e.target.value)} /></Field>
    <Field label="Size (GiB)" name="size" errs={f.errs}><input type="number" min="1" value={f.v.size} onInput={e => f.set('size', e.target.value)} /></Field>
    <Field label="Format" name="format" errs={f.errs}><select value={f.v.format} onChange={e => f.set('format', e.target.value)}><option>qcow2</option><option>raw</option></select></Field>
    <div class="buttons"><button type="submit" disabled={f.busy}>Create</button><button type="button" onClick={onClose}>Cancel</button></div></form></Modal>;
}

function DiskInfo({ ds, path, onClose }) {
  const [info, setInfo] = useState(null);
  const [err, setErr] = useState('');
  const grow = useForm({ size: '' });
  const conv = useForm({ target: path.replace(/\.[^./]*$/, '') + '-copy.qcow2', format: 'qcow2' });
  const load = () => api.get(dsURL(ds, 'disks', path)).then(i => { setInfo(i); grow.set('size', String(Math.ceil(i.virtual_size_bytes / 1073741824))); }, e => setErr(e.message));
  useEffect(() => { load(); }, []);
  async function doGrow(e) {
    e.preventDefault();
    // the form's one field is the size: the API's size_bytes, or a problem
    // naming no field (a disk that cannot shrink), goes beside it
    try {
      setInfo(await grow.submit(v => api.post(`/api/v1/datastores/${api.enc(ds)}/disks/resize`, { path, size_bytes: Math.round(Number(v.size) * 1073741824) })
        .catch(x => { x.problems = (x.problems.length ? x.problems : [{ field: '', message: x.message }]).map(p => ({ ...p, field: !p.field || p.field === 'size_bytes' ? 'size' : p.field })); throw x; }), ['size']));
    } catch { /* shown */ }
  }
  async function doConvert(e) {
    e.preventDefault();
    try { await conv.submit(v => api.post(`/api/v1/datastores/${api.enc(ds)}/disks/convert`, { path, target: v.target, format: v.format }), ['target', 'format']); refreshTasks(); onClose(); } catch { /* shown */ }
  }
  return <Modal title={'Disk ' + path} onClose={onClose}>
    {err && <p class="error" role="alert">{err}</p>}
    {info && <dl class="facts"><dt>Format</dt><dd>{info.format}</dd><dt>Virtual size</dt><dd>{bytes(info.virtual_size_bytes)}</dd><dt>On disk</dt><dd>{bytes(info.actual_size_bytes)}</dd>{info.backing_file && <><dt>Backing file</dt><dd>{info.backing_file}</dd></>}</dl>}
    <form onSubmit={doGrow}><FormError errs={grow.errs} />
      <Field label="Grow to (GiB)" name="size" errs={grow.errs}><input type="number" value={grow.v.size} onInput={e => grow.set('size', e.target.value)} /></Field>
      <button type="submit" disabled={grow.busy}>Grow</button></form>
    <form onSubmit={doConvert}><FormError errs={conv.errs} />
      <Field label="Copy into" name="target" errs={conv.errs}><input value={conv.v.target} onInput={e => conv.set('target', e.target.value)} /></Field>
      <Field label="Format" name="format" errs={conv.errs}><select value={conv.v.format} onChange={e => conv.set('format', e.target.value)}><option>qcow2</option><option>raw</option></select></Field>
      <button type="submit" disabled={conv.busy}>Convert (a task)</button></form>
    <div class="buttons"><button onClick={onClose}>Close</button></div>
  </Modal>;
}
