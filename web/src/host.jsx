// The host: its facts (as the DCUI's home screen shows them), hardware,
// charts of CPU, memory, network and disk, the management network and
// certificate, upgrades and power.
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { bytes, when, Progress, Modal, useForm, Field, FormError, lazy, Link } from './ui.jsx';
import { refreshTasks } from './tasks.jsx';
const Charts = lazy(() => import('./charts.jsx'), 'Charts');

function dur(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + ' d ' : '') + h + ' h ' + m + ' min';
}

export function HostPage() {
  const [host, setHost] = useState(null);
  const [hw, setHw] = useState(null);
  const [net, setNet] = useState(null);
  const [cert, setCert] = useState(null);
  const [err, setErr] = useState('');
  const load = () => {
    api.get('/api/v1/host').then(setHost, e => setErr(e.message));
    api.get('/api/v1/host/hardware').then(setHw, () => {});
    api.get('/api/v1/host/network').then(setNet, () => {});
    api.get('/api/v1/host/certificate').then(setCert, () => {});
  };
  useEffect(load, []);
  return (
    <section aria-labelledby="host-h" class="host">
      <h1 id="host-h">Host {host && host.hostname}</h1>
      {err && <p class="error" role="alert">{err}</p>}
      {host && <dl class="facts" id="host-facts">
        <dt>Version</dt><dd>{host.version}</dd>
        <dt>CPU</dt><dd>{host.cpu_model} ({host.cpu_count} CPUs)</dd>
        <dt>Memory</dt><dd>{bytes(host.memory_bytes)}</dd>
        <dt>Virtualization</dt><dd>{host.acceleration.mode.toUpperCase()}{host.acceleration.reason ? ': ' + host.acceleration.reason : ''}</dd>
        <dt>Uptime</dt><dd>{dur(host.uptime_seconds)}</dd>
        <dt>Kernel</dt><dd>{host.kernel}</dd>
        {host.qemu && <><dt>QEMU</dt><dd>{host.qemu}</dd></>}
        {net && <><dt>Management address</dt><dd>{(net.live.addresses || []).join(', ')} on {net.live.interface || net.live.nic} ({net.config.mode})</dd></>}
        {cert && <><dt>Certificate SHA-256</dt><dd class="mono">{cert.fingerprint_sha256}</dd></>}
      </dl>}
      <Charts />
      {net && <Network net={net} reload={load} />}
      {hw && <Hardware hw={hw} />}
      <Upgrade />
      {host && <Power hostname={host.hostname} />}
    </section>
  );
}

function Network({ net, reload }) {
  const [err, setErr] = useState('');
  async function confirmChange() {
    setErr('');
    try { await api.post('/api/v1/host/network/confirm'); reload(); } catch (e) { setErr(e.message); }
  }
  const c = net.config;
  return (
    <section aria-labelledby="mnet-h">
      <h2 id="mnet-h">Management network</h2>
      <dl class="facts">
        <dt>Mode</dt><dd>{c.mode}{c.vlan ? ', VLAN ' + c.vlan : ''}</dd>
        {c.address && <><dt>Address</dt><dd>{c.address} via {c.gateway}</dd></>}
        <dt>Live</dt><dd>{(net.live.addresses || []).join(', ')} {net.live.gateway && 'via ' + net.live.gateway} {net.live.link ? '' : '(no link)'}</dd>
        <dt>DNS</dt><dd>{(net.live.dns || []).join(', ')}</dd>
        {net.live.problem && <><dt>Problem</dt><dd class="error">{net.live.problem}</dd></>}
      </dl>
      {net.pending && <div class="notice" role="alert">A change of the management network waits for confirmation: it is rolled back by itself unless kept.
        <button onClick={confirmChange}>Keep this network configuration</button></div>}
      {err && <p class="error" role="alert">{err}</p>}
      <p><Link href="/settings">Change the management network, password, lockdown, certificate…</Link></p>
    </section>
  );
}

function Hardware({ hw }) {
  const [open, setOpen] = useState(false);
  return (
    <section aria-labelledby="hw-h">
      <h2 id="hw-h"><button class="link" aria-expanded={open} onClick={() => setOpen(!open)}>Hardware {open ? '▾' : '▸'}</button></h2>
      {open && <pre class="hw">{JSON.stringify(hw, null, 2)}</pre>}
    </section>
  );
}

function Upgrade() {
  const [st, setSt] = useState(null);
  const [up, setUp] = useState(null);
  const [err, setErr] = useState('');
  const load = () => api.get('/api/v1/host/upgrade').then(setSt, e => setErr(e.message));
  useEffect(() => { load(); }, []);
  function send(file, reboot) {
    setErr('');
    const xhr = new XMLHttpRequest();
    const state = { sent: 0, total: file.size, xhr };
    setUp(state);
    xhr.open('POST', '/api/v1/host/upgrade' + (reboot ? '?reboot=true' : ''));
    xhr.setRequestHeader('Authorization', 'Bearer ' + api.token_());
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = e => setUp({ ...state, sent: e.loaded, total: e.total || file.size });
    xhr.onload = () => {
      setUp(null);
      if (xhr.status >= 300) { try { setErr(JSON.parse(xhr.responseText).detail); } catch { setErr('HTTP ' + xhr.status); } }
      refreshTasks(); load();
    };
    xhr.onerror = () => { setUp(null); setErr('the upload broke off'); };
    xhr.onabort = () => { setUp(null); setErr('cancelled'); };
    xhr.send(file);
  }
  async function rollback() {
    if (!confirm('Boot the other bank from now on?')) return;
    try { await api.post('/api/v1/host/upgrade/rollback', {}); load(); } catch (e) { setErr(e.message); }
  }
  return (
    <section aria-labelledby="up-h">
      <h2 id="up-h">System and upgrade</h2>
      {st && <>
        <p>Running {st.version}{st.active_bank && ', bank ' + st.active_bank}{st.firmware && ', ' + st.firmware}.{!st.supported && ' Upgrades: ' + st.reason}</p>
        {st.banks && <table class="list"><thead><tr><th>Bank</th><th>State</th><th>Version</th></tr></thead>
          <tbody>{st.banks.map(b => <tr><td>{b.name}</td><td>{b.state}{b.tries_left != null ? ` (${b.tries_left} tries left)` : ''}</td><td>{b.version}</td></tr>)}</tbody></table>}
        {st.pending && <p class="notice">Pending: {st.pending.to_version} on bank {st.pending.bank} ({st.pending.result})</p>}
        {st.last && <p>Last upgrade: {st.last.result} {st.last.from_version} → {st.last.to_version} {when(st.last.time)} {st.last.reason}</p>}
      </>}
      {st && st.supported && <form onSubmit={e => { e.preventDefault(); const f = e.target.elements.image.files[0]; if (f) send(f, e.target.elements.reboot.checked); }}>
        <label>Upgrade image (plinth-VERSION.upgrade) <input type="file" name="image" accept=".upgrade" /></label>
        <label class="check"><input type="checkbox" name="reboot" /> Reboot into it when written (on trial)</label>
        <button type="submit" disabled={!!up}>Upload</button>
        {st.banks && <button type="button" onClick={rollback}>Roll back</button>}
      </form>}
      {up && <div><Progress value={up.sent} max={up.total} label="upgrade upload" /> {bytes(up.sent)} of {bytes(up.total)} <button onClick={() => up.xhr.abort()}>Cancel</button></div>}
      {err && <p class="error" role="alert">{err}</p>}
    </section>
  );
}

function Power({ hostname }) {
  const [action, setAction] = useState('');
  return (
    <section aria-labelledby="pw-h">
      <h2 id="pw-h">Power</h2>
      <button onClick={() => setAction('reboot')}>Reboot the host…</button> <button class="danger" onClick={() => setAction('shutdown')}>Shut down the host…</button>
      {action && <PowerDialog action={action} hostname={hostname} onClose={() => setAction('')} />}
    </section>
  );
}

function PowerDialog({ action, hostname, onClose }) {
  const f = useForm({ reason: '', confirm: '' });
  const [done, setDone] = useState(false);
  async function go(e) {
    e.preventDefault();
    try { await f.submit(v => api.post('/api/v1/host/power', { action, reason: v.reason, confirm: v.confirm }), ['reason', 'confirm', 'action']); setDone(true); } catch { /* beside the fields */ }
  }
  return (
    <Modal title={(action === 'reboot' ? 'Reboot ' : 'Shut down ') + hostname} onClose={onClose}>
      {done ? <p role="status">The host is going {action === 'reboot' ? 'down for a reboot' : 'down'}: running VMs are shut down first.</p> :
        <form onSubmit={go}>
          <FormError errs={f.errs} />
          <p>Running VMs are shut down first.</p>
          <Field label="Reason (for the audit log)" name="reason" errs={f.errs}><input value={f.v.reason} onInput={e => f.set('reason', e.target.value)} /></Field>
          <Field label={`Type the host's name (${hostname}) to confirm`} name="confirm" errs={f.errs}><input value={f.v.confirm} onInput={e => f.set('confirm', e.target.value)} autocomplete="off" /></Field>
          <div class="buttons"><button type="submit" class="danger" disabled={f.busy}>{action === 'reboot' ? 'Reboot' : 'Shut down'}</button><button type="button" onClick={onClose}>Cancel</button></div>
        </form>}
    </Modal>
  );
}
