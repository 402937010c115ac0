// The host's settings (issue 15's routes, vmkernel's): the management
// network with its confirm step, the root password, lockdown, the TLS
// certificate, time (NTP), remote logging (syslog), SSH, services, logs, the
// support bundle and the reset. Every form's problems sit
// beside the field the API names (config.address, password, confirm...).
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { bytes, when, Modal, useForm, Field, FormError, placeProblems } from './ui.jsx';

const H = '/api/v1/host/';

export function Settings() {
  const [s, setS] = useState(null);
  const [err, setErr] = useState('');
  const load = () => api.get(H + 'settings').then(setS, e => setErr(e.message));
  useEffect(() => { load(); }, []);
  return (
    <section aria-labelledby="set-h" class="settings">
      <h1 id="set-h">Host settings</h1>
      {err && <p class="error" role="alert">{err}</p>}
      {s && s.boot_mode && s.boot_mode.mode && s.boot_mode.mode !== 'installed' && <p class="notice">This host runs {s.boot_mode.mode}{s.boot_mode.reason ? ' (' + s.boot_mode.reason + ')' : ''}: settings last until it restarts.</p>}
      <NetworkSettings />
      {s && <>
        <Password status={s.password} />
        <Lockdown initial={s.lockdown} />
        <Certificate initial={s.certificate} />
        <Time initial={s.time} />
        <Syslog initial={s.syslog} />
        <SSH initial={s.ssh} />
      </>}
      <Services />
      <Logs />
      <SupportBundle />
      <Reset />
    </section>
  );
}

// ---- management network ----

const netFields = ['config.nic', 'config.vlan', 'config.mode', 'config.address', 'config.gateway', 'config.ipv6', 'config.ipv6_address',
  'config.dns', 'config.search', 'config.hostname', 'confirm_seconds'];

function netForm(n) {
  const c = n.config || {};
  return {
    'config.nic': c.nic || n.live.nic || '', 'config.vlan': c.vlan ? String(c.vlan) : '', 'config.mode': c.mode || 'dhcp',
    'config.address': c.address || (c.mode === 'static' ? '' : (n.live.addresses || []).find(a => a.includes('.')) || ''),
    'config.gateway': c.gateway || n.live.gateway || '', 'config.ipv6': c.ipv6 || 'auto', 'config.ipv6_address': c.ipv6_address || '',
    'config.dns': (c.dns || n.live.dns || []).join(', '), 'config.search': (c.search || []).join(' '), 'config.hostname': c.hostname || n.live.hostname || '',
    confirm_seconds: '60',
  };
}

const list = s => s.split(/[\s,]+/).filter(Boolean);

function netBody(v) {
  const config = { nic: v['config.nic'], mode: v['config.mode'], ipv6: v['config.ipv6'], hostname: v['config.hostname'].trim(),
    dns: list(v['config.dns']), search: list(v['config.search']) };
  if (v['config.vlan'].trim()) config.vlan = Number(v['config.vlan']);
  if (config.mode === 'static') { config.address = v['config.address'].trim(); config.gateway = v['config.gateway'].trim(); }
  if (config.ipv6 === 'static') config.ipv6_address = v['config.ipv6_address'].trim();
  return { config, confirm_seconds: Number(v.confirm_seconds) || 0 };
}

// The address a change moves the host to, as an origin this page can link
// to (the port kept: the host serves the client on the same port).
function newOrigin(addr) {
  const ip = (addr || '').split('/')[0];
  if (!ip) return '';
  return location.protocol + '//' + (ip.includes(':') ? '[' + ip + ']' : ip) + (location.port ? ':' + location.port : '') + '/';
}

function NetworkSettings() {
  const [net, setNet] = useState(null);
  const [err, setErr] = useState('');
  const [unreachable, setUnreachable] = useState(false);
  const [editing, setEditing] = useState(false);
  const [checks, setChecks] = useState(null);
  const [busy, setBusy] = useState('');
  const f = useForm({});
  // A request to an address the host just dropped may get no answer at
  // all: give up on it after 5 s and say the host is unreachable there.
  const load = () => api.get(H + 'network', { signal: AbortSignal.timeout(5000) }).then(n => { setNet(n); setUnreachable(false); setErr(''); return n; }, e => { if (e.status === 0) setUnreachable(true); else setErr(e.message); });
  useEffect(() => { load(); }, []);
  // While a change is in flight, follow it every second.
  const inFlight = net && net.pending;
  useEffect(() => {
    if (!inFlight) return;
    const t = setInterval(load, 1000);
    return () => clearInterval(t);
  }, [!!inFlight]);
  function edit() { f.setV(netForm(net)); f.setErrs({}); setEditing(true); }
  async function apply(e) {
    e.preventDefault();
    try {
      const ch = await f.submit(v => api.request('PUT', H + 'network', netBody(v), { signal: AbortSignal.timeout(15000) }), netFields);
      setEditing(false);
      if (ch) setNet(n => ({ ...n, pending: ch }));
    } catch { /* beside the fields; no answer: said at the top, and the state below is read again */ }
    load();
  }
  async function action(what, body) {
    setErr(''); setBusy(what);
    try {
      const r = await api.post(H + 'network/' + what, body);
      if (what === 'test') setChecks(r || []);
      await load();
    } catch (x) { setErr(x.message); } finally { setBusy(''); }
  }
  if (!net) return <section aria-labelledby="mnet-h"><h2 id="mnet-h">Management network</h2>{err ? <p class="error" role="alert">{err}</p> : unreachable ? <p class="error" role="alert">The host does not answer at {location.host}.</p> : <p>Loading…</p>}</section>;
  const c = net.config;
  return (
    <section aria-labelledby="mnet-h" id="mgmt-network">
      <h2 id="mnet-h">Management network</h2>
      <dl class="facts">
        <dt>Configuration</dt><dd>{c.mode === 'static' ? `static ${c.address}${c.gateway ? ' via ' + c.gateway : ''}` : 'DHCP'} on {c.nic || 'the first NIC with a link'}{c.vlan ? ', VLAN ' + c.vlan : ''}{net.saved ? '' : ' (the default: nothing saved)'}</dd>
        <dt>Live</dt><dd>{(net.live.addresses || []).join(', ') || 'no address'} on {net.live.interface || net.live.nic || '?'}{net.live.gateway ? ' via ' + net.live.gateway : ''}{net.live.link ? '' : ' (no link)'}</dd>
        {net.live.dhcp && <><dt>DHCP lease</dt><dd>from {net.live.dhcp.server || '?'}{net.live.dhcp.expires ? ', until ' + when(net.live.dhcp.expires) : ''}</dd></>}
        <dt>DNS</dt><dd>{(net.live.dns || []).join(', ') || 'none'}{(net.live.search || []).length ? ' (search ' + net.live.search.join(' ') + ')' : ''}</dd>
        <dt>Host name</dt><dd>{net.live.hostname}</dd>
        {net.live.problem && <><dt>Problem</dt><dd class="error">{net.live.problem}</dd></>}
        {net.saved_error && <><dt>Saved configuration</dt><dd class="error">{net.saved_error}</dd></>}
      </dl>
      {net.pending && <Pending ch={net.pending} reload={load} unreachable={unreachable} />}
      {!net.pending && net.last_change && <p class={'last-change ' + (net.last_change.state === 'kept' ? 'notice' : 'error banner')} role="status" id="net-last">
        Last change: {net.last_change.state.replace('_', ' ')}{net.last_change.outcome ? ' (' + net.last_change.outcome + ')' : ''}{net.last_change.error ? ': ' + net.last_change.error : ''}.</p>}
      {unreachable && !net.pending && <p class="error" role="alert">The host does not answer at {location.host}.</p>}
      {err && <p class="error" role="alert">{err}</p>}
      {!editing && <div class="buttons">
        <button id="net-edit" onClick={edit} disabled={!!net.pending}>Change…</button>
        <button onClick={() => action('test')} disabled={!!busy}>{busy === 'test' ? 'Testing…' : 'Test'}</button>
        <button onClick={() => action('restart')} disabled={!!busy || !!net.pending}>Restart</button>
        <button onClick={() => action('restore', { confirm_seconds: 60 })} disabled={!!busy || !!net.pending}>Restore the default (DHCP)…</button>
      </div>}
      {checks && <ul class="checks" aria-label="Network test">{checks.map(k => <li class={k.ok ? 'ok' : 'error'}>{k.ok ? '✓' : '✗'} {k.what}{k.info ? ': ' + k.info : ''}</li>)}</ul>}
      {editing && <form onSubmit={apply} class="net-form" aria-label="Change the management network">
        <FormError errs={f.errs} />
        <p class="hint">The change is applied a second after you send it and rolled back by itself unless you keep it, from its new address, in time.</p>
        <div class="row">
          <Field label="NIC" name="config.nic" errs={f.errs}><select value={f.v['config.nic']} onChange={e => f.set('config.nic', e.target.value)}>
            <option value="">the first with a link</option>
            {(net.nics || []).map(n => <option value={n.name}>{n.name}{n.mac ? ' ' + n.mac : ''}{n.link === false ? ' (no link)' : ''}</option>)}</select></Field>
          <Field label="VLAN (none if empty)" name="config.vlan" errs={f.errs}><input inputMode="numeric" value={f.v['config.vlan']} onInput={e => f.set('config.vlan', e.target.value)} /></Field>
        </div>
        <div class="row">
          <Field label="IPv4" name="config.mode" errs={f.errs}><select value={f.v['config.mode']} onChange={e => f.set('config.mode', e.target.value)}><option value="dhcp">DHCP</option><option value="static">static</option></select></Field>
          {f.v['config.mode'] === 'static' && <>
            <Field label="Address/prefix" name="config.address" errs={f.errs} hint="e.g. 192.0.2.10/24"><input value={f.v['config.address']} onInput={e => f.set('config.address', e.target.value)} /></Field>
            <Field label="Gateway" name="config.gateway" errs={f.errs}><input value={f.v['config.gateway']} onInput={e => f.set('config.gateway', e.target.value)} /></Field>
          </>}
        </div>
        <div class="row">
          <Field label="IPv6" name="config.ipv6" errs={f.errs}><select value={f.v['config.ipv6']} onChange={e => f.set('config.ipv6', e.target.value)}><option value="auto">automatic (SLAAC)</option><option value="static">static</option><option value="off">off</option></select></Field>
          {f.v['config.ipv6'] === 'static' && <Field label="IPv6 address/prefix" name="config.ipv6_address" errs={f.errs}><input value={f.v['config.ipv6_address']} onInput={e => f.set('config.ipv6_address', e.target.value)} /></Field>}
        </div>
        <div class="row">
          <Field label="DNS servers" name="config.dns" errs={f.errs} hint="separated by commas or spaces"><input value={f.v['config.dns']} onInput={e => f.set('config.dns', e.target.value)} /></Field>
          <Field label="Search domains" name="config.search" errs={f.errs}><input value={f.v['config.search']} onInput={e => f.set('config.search', e.target.value)} /></Field>
        </div>
        <div class="row">
          <Field label="Host name" name="config.hostname" errs={f.errs}><input value={f.v['config.hostname']} onInput={e => f.set('config.hostname', e.target.value)} /></Field>
          <Field label="Roll back unless kept within (seconds)" name="confirm_seconds" errs={f.errs}><input type="number" min="10" max="600" value={f.v.confirm_seconds} onInput={e => f.set('confirm_seconds', e.target.value)} /></Field>
        </div>
        <div class="buttons"><button type="submit" disabled={f.busy}>Apply</button><button type="button" onClick={() => setEditing(false)}>Cancel</button></div>
      </form>}
    </section>
  );
}

// Pending is the change in flight: its countdown to the rollback, the
// address to keep it from, and the buttons. While it is applied the host
// may stop answering at the address this page uses, so what the page
// knows last stays shown: a static change's address is known before it is
// in effect, and the deadline is an upper bound until then.
function Pending({ ch, reload, unreachable }) {
  const [err, setErr] = useState('');
  const [now, setNow] = useState(Date.now());
  useEffect(() => { const t = setInterval(() => setNow(Date.now()), 500); return () => clearInterval(t); }, []);
  const left = Math.max(0, Math.round((new Date(ch.deadline) - now) / 1000));
  const addr = ch.address || (ch.config && ch.config.mode === 'static' ? ch.config.address : '');
  const prev = ch.previous && ch.previous.mode === 'static' ? ch.previous.address : 'DHCP';
  const there = newOrigin(addr);
  const here = there && new URL(there).host === location.host;
  const live = ch.state === 'applying' || ch.state === 'pending';
  async function keep() {
    setErr('');
    try { await api.post(H + 'network/confirm'); reload(); } catch (x) { setErr(x.message); }
  }
  async function rollback() {
    setErr('');
    try { await api.post(H + 'network/rollback'); reload(); } catch (x) { setErr(x.message); }
  }
  return (
    <div class="notice pending" role="alert" id="net-pending">
      {ch.state === 'applying' && <p>Applying the change{addr ? <> to <strong>{addr}</strong></> : ''}…</p>}
      {ch.state === 'rolling_back' && <p>Rolling the change back to {prev}…</p>}
      {ch.state === 'pending' && <p>The new configuration is in effect{ch.address ? <>: <strong>{ch.address}</strong> on {ch.interface}</> : ' (it got no address: only the console can keep it)'}.</p>}
      {live && <p>{left > 0 ? <>It is rolled back to the previous configuration ({prev}) in <strong class="countdown">{left} s</strong> unless kept.</>
        : <>The deadline has passed: the host rolls back to the previous configuration ({prev}).</>}</p>}
      {live && there && !here && <p>A change is kept only by a request to its new address, to prove it works: open <a href={there} target="_blank" rel="noopener" id="net-new-address">{there}</a>, log in there and keep it (this page reached the host at {location.host}).</p>}
      {live && unreachable && <p class="error">The host no longer answers at {location.host}{here ? '' : ', as expected once the change is in effect'}. Should the change be rolled back, it answers here again.</p>}
      <div class="buttons">
        <button type="submit" id="net-keep" onClick={keep} disabled={ch.state !== 'pending' || unreachable}>Keep this configuration</button>
        <button id="net-rollback" class="danger" onClick={rollback} disabled={ch.state !== 'pending' || unreachable}>Roll back now</button>
      </div>
      {err && <p class="error" role="alert" data-field="confirm">{err}</p>}
    </div>
  );
}

// ---- root password ----

function Password({ status }) {
  const f = useForm({ password: '', repeat: '' });
  async function go(e) {
    e.preventDefault();
    if (f.v.password !== f.v.repeat) { f.setErrs({ repeat: 'differs from the new password' }); return; }
    try {
      await f.submit(v => api.put(H + 'password', { password: v.password }), ['password']);
      api.endSession('the root password changed, which ends every session: log in with the new one.');
    } catch { /* beside the fields */ }
  }
  return (
    <section aria-labelledby="pw-set-h">
      <h2 id="pw-set-h">Root password</h2>
      <p>{status.set ? 'Set' : 'Not set'}{status.changed_at ? ', changed ' + when(status.changed_at) : ''}. Changing it ends every session, API token and console ticket.</p>
      <form onSubmit={go} class="inline-form" aria-label="Change the root password">
        <FormError errs={f.errs} />
        <Field label="New password" name="password" errs={f.errs} hint="8 characters or more, mixing three of: lower case, upper case, digits, others"><input type="password" autocomplete="new-password" value={f.v.password} onInput={e => f.set('password', e.target.value)} /></Field>
        <Field label="Repeat it" name="repeat" errs={f.errs}><input type="password" autocomplete="new-password" value={f.v.repeat} onInput={e => f.set('repeat', e.target.value)} /></Field>
        <button type="submit" disabled={f.busy}>Change the password</button>
      </form>
    </section>
  );
}

// ---- lockdown ----

function Lockdown({ initial }) {
  const [on, setOn] = useState(initial.enabled);
  const [ask, setAsk] = useState(false);
  const f = useForm({ password: '' });
  async function set(enabled) {
    try {
      const r = await f.submit(v => api.put(H + 'lockdown', enabled ? { enabled } : { enabled, password: v.password }), ['password']);
      setOn(r ? r.enabled : enabled); setAsk(false); f.set('password', '');
      window.dispatchEvent(new Event('plinth:who'));
    } catch { /* beside the field */ }
  }
  return (
    <section aria-labelledby="ld-h" id="lockdown">
      <h2 id="ld-h">Lockdown mode</h2>
      <p id="lockdown-state">Lockdown is <strong>{on ? 'on' : 'off'}</strong>. While it is on, the API (this client, the CLI, scripts) changes nothing but turning it off with the root password; the host's console can change everything.</p>
      {!on && <button onClick={() => setAsk(true)} id="lockdown-on">Turn lockdown on…</button>}
      {on && <form onSubmit={e => { e.preventDefault(); set(false); }} class="inline-form" aria-label="Turn lockdown off">
        <FormError errs={f.errs} />
        <Field label="Root password" name="password" errs={f.errs}><input type="password" autocomplete="current-password" value={f.v.password} onInput={e => f.set('password', e.target.value)} /></Field>
        <button type="submit" disabled={f.busy} id="lockdown-off">Turn lockdown off</button>
      </form>}
      {ask && <Modal title="Turn lockdown on" onClose={() => setAsk(false)}>
        <FormError errs={f.errs} />
        <p>From now on this client can only look, and turn lockdown off again with the root password.</p>
        <div class="buttons"><button type="submit" onClick={() => set(true)} disabled={f.busy}>Turn it on</button><button onClick={() => setAsk(false)}>Cancel</button></div>
      </Modal>}
    </section>
  );
}

// ---- certificate ----

function Certificate({ initial }) {
  const [cert, setCert] = useState(initial);
  const [open, setOpen] = useState(false);
  const f = useForm({ certificate_pem: '', key_pem: '' });
  const readInto = k => e => { const file = e.target.files[0]; if (file) file.text().then(t => f.set(k, t)); };
  async function go(e) {
    e.preventDefault();
    try { setCert(await f.submit(v => api.put(H + 'certificate', v), ['certificate_pem', 'key_pem'])); setOpen(false); f.setV({ certificate_pem: '', key_pem: '' }); } catch { /* beside the fields */ }
  }
  return (
    <section aria-labelledby="cert-h">
      <h2 id="cert-h">TLS certificate</h2>
      <dl class="facts" id="cert-facts">
        <dt>Subject</dt><dd>{cert.subject}{cert.self_signed ? ' (self-signed)' : ''}</dd>
        <dt>Valid</dt><dd>{when(cert.not_before)} to {when(cert.not_after)}</dd>
        <dt>SHA-256</dt><dd class="mono">{cert.fingerprint_sha256}</dd>
      </dl>
      {!open && <div class="buttons"><button onClick={() => setOpen(true)} id="cert-replace">Replace…</button></div>}
      {open && <form onSubmit={go} aria-label="Replace the certificate" class="cert-form">
        <FormError errs={f.errs} />
        <p class="hint">PEM: the certificate (its chain may follow) and its key, unencrypted. New connections get it within a second; clients that pinned the old fingerprint must pin the new one.</p>
        <Field label="Certificate (PEM)" name="certificate_pem" errs={f.errs}><textarea rows="6" class="mono" value={f.v.certificate_pem} onInput={e => f.set('certificate_pem', e.target.value)} /></Field>
        <label class="check">or from a file <input type="file" accept=".pem,.crt,.cer" onChange={readInto('certificate_pem')} /></label>
        <Field label="Key (PEM)" name="key_pem" errs={f.errs}><textarea rows="6" class="mono" value={f.v.key_pem} onInput={e => f.set('key_pem', e.target.value)} /></Field>
        <label class="check">or from a file <input type="file" accept=".pem,.key" onChange={readInto('key_pem')} /></label>
        <div class="buttons"><button type="submit" disabled={f.busy}>Replace the certificate</button><button type="button" onClick={() => setOpen(false)}>Cancel</button></div>
      </form>}
    </section>
  );
}

// ---- lists in a text area (NTP servers, syslog targets) ----

const lines = s => s.split('\n').map(l => l.trim()).filter(Boolean);

// submitList is f.submit for a form whose field name is a list typed one
// entry a line: a problem with name[i] goes beside the text area, saying
// which line.
async function submitList(f, fn, name, fields) {
  try { return await f.submit(fn, fields); } catch (e) {
    if (e && e.problems && e.problems.length) {
      const vals = lines(f.v[name]);
      for (const p of e.problems) {
        const m = (p.field || '').match(new RegExp('^' + name + '\\[(\\d+)\\]$'));
        if (m) p.message = `line ${Number(m[1]) + 1} (${vals[Number(m[1])] || ''}): ${p.message}`;
      }
      f.setErrs(placeProblems(e, fields));
    }
    throw e;
  }
}

// ---- time ----

function Time({ initial }) {
  const [st, setSt] = useState(initial);
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const f = useForm({ enabled: initial.config.enabled, servers: (initial.config.servers || []).join('\n') });
  async function save(e) {
    e.preventDefault(); setErr('');
    try { setSt(await submitList(f, v => api.put(H + 'time', { enabled: v.enabled, servers: lines(v.servers) }), 'servers', ['enabled', 'servers'])); } catch { /* beside the fields */ }
  }
  async function sync() {
    setErr(''); setBusy(true);
    try { setSt(await api.post(H + 'time/sync')); } catch (x) { setErr(x.message); } finally { setBusy(false); }
  }
  return (
    <section aria-labelledby="time-h" id="time">
      <h2 id="time-h">Time</h2>
      <dl class="facts" id="time-facts">
        <dt>Host clock</dt><dd>{when(st.now)} (UTC {new Date(st.now).toISOString().slice(0, 19).replace('T', ' ')})</dd>
        <dt>NTP</dt><dd>{st.config.enabled ? (st.synced ? 'in sync' : 'not in sync') : 'off'}{st.last_sync ? `, last set ${when(st.last_sync)} from ${st.server}${st.stratum ? ' (stratum ' + st.stratum + ')' : ''}, ${st.offset_seconds.toFixed(3)} s off` : ''}</dd>
        <dt>Servers in use</dt><dd>{(st.servers || []).length ? <ul class="checks">{st.servers.map(s => <li class={s.last_error ? 'error' : ''}>{s.address} <small>(from {s.source})</small>{s.last_error ? ': ' + s.last_error : ''}</li>)}</ul> : 'none'}</dd>
        {st.problem && <><dt>Problem</dt><dd class="error" id="time-problem">{st.problem}</dd></>}
      </dl>
      {err && <p class="error" role="alert">{err}</p>}
      <form onSubmit={save} class="inline-form" aria-label="Set the time servers">
        <FormError errs={f.errs} />
        <label class="check"><input type="checkbox" name="enabled" checked={f.v.enabled} onChange={e => f.set('enabled', e.target.checked)} /> Keep the clock with NTP</label>
        <Field label="NTP servers, one a line" name="servers" errs={f.errs} hint="host names or addresses, optionally :port; at most 8; none: those DHCP or the answer file name"><textarea rows="3" class="mono" value={f.v.servers} onInput={e => f.set('servers', e.target.value)} /></Field>
        <div class="buttons"><button type="submit" disabled={f.busy}>Save</button><button type="button" onClick={sync} disabled={busy || !st.config.enabled} id="time-sync">{busy ? 'Asking…' : 'Synchronize now'}</button></div>
      </form>
    </section>
  );
}

// ---- remote logging ----

function Syslog({ initial }) {
  const [st, setSt] = useState(initial);
  const f = useForm({ targets: (initial.config.targets || []).join('\n'), ca_pem: initial.config.ca_pem || '' });
  const load = () => api.get(H + 'syslog').then(setSt, () => {});
  // The targets' counters move: follow them while the section is shown.
  useEffect(() => { const t = setInterval(load, 5000); return () => clearInterval(t); }, []);
  async function save(e) {
    e.preventDefault();
    try { setSt(await submitList(f, v => api.put(H + 'syslog', { targets: lines(v.targets), ca_pem: v.ca_pem.trim() || undefined }), 'targets', ['targets', 'ca_pem'])); } catch { /* beside the fields */ }
  }
  const tls = lines(f.v.targets).some(t => t.startsWith('tls://')) || f.v.ca_pem;
  return (
    <section aria-labelledby="syslog-h" id="syslog">
      <h2 id="syslog-h">Remote logging (syslog)</h2>
      {(st.targets || []).length ? <table class="list" aria-label="Syslog servers" id="syslog-targets"><thead><tr><th>Server</th><th>State</th><th>Sent</th><th>Dropped</th></tr></thead>
        <tbody>{st.targets.map(t => <tr><td class="mono">{t.url}</td><td class={t.problem ? 'error' : ''}>{t.connected ? 'connected' : 'not connected'}{t.problem ? ': ' + t.problem : ''}</td><td>{t.sent}</td><td>{t.dropped}</td></tr>)}</tbody></table>
        : <p>Off: the host's logs stay on the host.</p>}
      <form onSubmit={save} class="wide-form" aria-label="Set the syslog servers">
        <FormError errs={f.errs} />
        <Field label="Syslog servers, one a line" name="targets" errs={f.errs} hint="udp://HOST[:514], tcp://HOST[:514] or tls://HOST[:6514]; at most 4; none: off"><textarea rows="3" class="mono" value={f.v.targets} onInput={e => f.set('targets', e.target.value)} /></Field>
        {tls && <Field label="CA certificate for tls:// servers (PEM)" name="ca_pem" errs={f.errs}><textarea rows="5" class="mono" value={f.v.ca_pem} onInput={e => f.set('ca_pem', e.target.value)} /></Field>}
        <div class="buttons"><button type="submit" disabled={f.busy}>Save</button></div>
      </form>
    </section>
  );
}

// ---- SSH ----

function SSH({ initial }) {
  const [st, setSt] = useState(initial);
  const [err, setErr] = useState('');
  const [ask, setAsk] = useState(false);
  const f = useForm({ enabled: initial.config.enabled, password_login: initial.config.password_login, session: initial.config.session || 'dcui' });
  const k = useForm({ key: '' });
  const load = () => api.get(H + 'ssh').then(s => { setSt(s); f.setV({ enabled: s.config.enabled, password_login: s.config.password_login, session: s.config.session || 'dcui' }); }, x => setErr(x.message));
  // Lockdown turns SSH off: read it again when lockdown changes.
  useEffect(() => { window.addEventListener('plinth:who', load); return () => window.removeEventListener('plinth:who', load); }, []);
  async function save(e) {
    if (e) e.preventDefault();
    setErr('');
    try { setSt(await f.submit(v => api.put(H + 'ssh', v), ['enabled', 'password_login', 'session'])); setAsk(false); } catch { /* beside the fields */ }
  }
  function submit(e) {
    e.preventDefault();
    if (f.v.enabled && !st.config.enabled) setAsk(true); else save();
  }
  async function addKey(e) {
    e.preventDefault();
    try { await k.submit(v => api.post(H + 'ssh/keys', { key: v.key.trim() }), ['key']); k.set('key', ''); load(); } catch { /* beside the field */ }
  }
  async function delKey(id) {
    setErr('');
    try { await api.del(H + 'ssh/keys/' + api.enc(id)); load(); } catch (x) { setErr(x.message); }
  }
  return (
    <section aria-labelledby="ssh-h" id="ssh">
      <h2 id="ssh-h">SSH</h2>
      {st.warning && <p class="error banner" role="alert" id="ssh-warning">{st.warning}</p>}
      <dl class="facts">
        <dt>Service</dt><dd id="ssh-state">{st.running ? `on, port ${st.port}` : 'off'}{st.sessions ? `, ${st.sessions} open session${st.sessions > 1 ? 's' : ''}` : ''}</dd>
        {st.host_key_fingerprint && <><dt>Host key</dt><dd class="mono">{st.host_key_fingerprint}</dd></>}
        {st.problem && <><dt>Problem</dt><dd class="error">{st.problem}</dd></>}
      </dl>
      {err && <p class="error" role="alert">{err}</p>}
      <form onSubmit={submit} class="inline-form" aria-label="Set SSH">
        <FormError errs={f.errs} />
        <label class="check"><input type="checkbox" name="enabled" checked={f.v.enabled} onChange={e => f.set('enabled', e.target.checked)} /> SSH on</label>
        <label class="check"><input type="checkbox" name="password_login" checked={f.v.password_login} onChange={e => f.set('password_login', e.target.checked)} /> Allow root's password as well as keys</label>
        <Field label="A login gets" name="session" errs={f.errs}><select value={f.v.session} onChange={e => f.set('session', e.target.value)}><option value="dcui">the console's screens (DCUI)</option><option value="shell">a root shell</option></select></Field>
        <div class="buttons"><button type="submit" disabled={f.busy} id="ssh-save">Save</button></div>
      </form>
      {ask && <Modal title="Turn SSH on" onClose={() => setAsk(false)}>
        <FormError errs={f.errs} />
        <p>SSH gives root on this host to whoever has an authorized key{f.v.password_login ? ' or the root password' : ''}, past the API's audit log and lockdown's rules. ESXi leaves it off for that reason: turn it on for a task, and off after.</p>
        <div class="buttons"><button type="submit" onClick={() => save()} disabled={f.busy}>Turn SSH on</button><button onClick={() => setAsk(false)}>Cancel</button></div>
      </Modal>}
      <h3>root's authorized keys</h3>
      {(st.keys || []).length ? <table class="list" aria-label="SSH keys" id="ssh-keys"><thead><tr><th>Type</th><th>Fingerprint</th><th>Comment</th><th /></tr></thead>
        <tbody>{st.keys.map(x => <tr><td>{x.type}</td><td class="mono">{x.fingerprint}</td><td>{x.comment}</td><td><button class="danger" onClick={() => delKey(x.id)}>Remove</button></td></tr>)}</tbody></table>
        : <p>None.</p>}
      <form onSubmit={addKey} class="wide-form" aria-label="Authorize an SSH key">
        <FormError errs={k.errs} />
        <Field label="Public key (one authorized_keys line)" name="key" errs={k.errs}><textarea rows="2" class="mono" value={k.v.key} onInput={e => k.set('key', e.target.value)} /></Field>
        <div class="buttons"><button type="submit" disabled={k.busy}>Add the key</button></div>
      </form>
    </section>
  );
}

// ---- support bundle ----

function SupportBundle() {
  const [st, setSt] = useState({});
  async function go() {
    setSt({ busy: true });
    try { const got = await api.download(H + 'support-bundle', 'plinth-support.tar.gz'); setSt({ done: got }); } catch (x) { setSt({ err: x.message }); }
  }
  return (
    <section aria-labelledby="bundle-h">
      <h2 id="bundle-h">Support bundle</h2>
      <p>A tar.gz of the logs, hardware inventory, settings, configuration, VM specs and recent events, for a bug report. It holds no secret (no password hash, key or cloud-init user data).</p>
      <button onClick={go} disabled={st.busy} id="bundle-get">{st.busy ? 'Gathering…' : 'Download the support bundle'}</button>
      {st.done && <p role="status" id="bundle-done">Downloaded {st.done.name} ({bytes(st.done.size)}).</p>}
      {st.err && <p class="error" role="alert">{st.err}</p>}
    </section>
  );
}

// ---- services ----

function Services() {
  const [svcs, setSvcs] = useState(null);
  const [err, setErr] = useState('');
  const [ask, setAsk] = useState('');
  useEffect(() => { api.get(H + 'services').then(s => setSvcs(s || []), e => setErr(e.message)); }, []);
  async function restart(name) {
    setErr('');
    try {
      await api.post(H + 'services/restart', { services: [name] });
      setAsk('');
      if (name === 'mgmtd') api.endSession('the management agent restarts, which ends every session: log in again in a few seconds.');
    } catch (x) { setErr(x.message); }
  }
  return (
    <section aria-labelledby="svc-h">
      <h2 id="svc-h">Services</h2>
      {err && <p class="error" role="alert">{err}</p>}
      {svcs && <table class="list" aria-label="Services"><thead><tr><th>Service</th><th>State</th><th>What it does</th><th /></tr></thead>
        <tbody>{svcs.map(s => <tr><td>{s.name}</td><td>{s.state}</td><td>{s.description}</td>
          <td>{s.restartable && <button onClick={() => setAsk(s.name)}>Restart…</button>}</td></tr>)}</tbody></table>}
      {ask && <Modal title={'Restart ' + ask} onClose={() => setAsk('')}>
        {ask === 'mgmtd' && <p>The management agent serves this client: every session ends, and you log in again.</p>}
        {err && <p class="error" role="alert">{err}</p>}
        <div class="buttons"><button type="submit" onClick={() => restart(ask)}>Restart</button><button onClick={() => setAsk('')}>Cancel</button></div>
      </Modal>}
    </section>
  );
}

// ---- logs ----

function Logs() {
  const [logs, setLogs] = useState(null);
  const [shown, setShown] = useState(null);
  const [err, setErr] = useState('');
  useEffect(() => { api.get(H + 'logs').then(l => setLogs(l || []), e => setErr(e.message)); }, []);
  async function view(name) {
    setErr('');
    try { setShown({ name, text: await api.get(H + 'logs/' + api.enc(name) + '?tail_bytes=65536') }); } catch (x) { setErr(x.message); }
  }
  return (
    <section aria-labelledby="logs-h">
      <h2 id="logs-h">Logs</h2>
      {err && <p class="error" role="alert">{err}</p>}
      {logs && <table class="list" aria-label="Logs"><thead><tr><th>Log</th><th>What</th><th>Size</th><th /></tr></thead>
        <tbody>{logs.map(l => <tr><td>{l.name}</td><td>{l.description}</td><td>{bytes(l.size)}</td>
          <td class="actions"><button onClick={() => view(l.name)} data-log={l.name}>View the end</button>
            <button onClick={() => api.download(H + 'logs/' + api.enc(l.name) + '?tail_bytes=4194304', l.name + '.log').catch(x => setErr(x.message))}>Download</button></td></tr>)}</tbody></table>}
      {shown && <figure class="log"><figcaption>The end of the {shown.name} log <button onClick={() => setShown(null)}>Close</button></figcaption>
        <pre class="hw" id="log-text" tabIndex="0">{shown.text || '(empty)'}</pre></figure>}
    </section>
  );
}

// ---- reset ----

function Reset() {
  const [open, setOpen] = useState(false);
  const [done, setDone] = useState(false);
  const f = useForm({ confirm: '' });
  async function go(e) {
    e.preventDefault();
    try { await f.submit(v => api.post(H + 'reset', { confirm: v.confirm }), ['confirm']); setDone(true); } catch { /* beside the field */ }
  }
  return (
    <section aria-labelledby="reset-h">
      <h2 id="reset-h">Reset the configuration</h2>
      <p>Forgets the management network, host name, root password, lockdown, API tokens, time, remote logging and SSH, then restarts the host as on its first boot. VMs, datastores and the certificate stay.</p>
      <button class="danger" onClick={() => setOpen(true)}>Reset…</button>
      {open && <Modal title="Reset the host's configuration" onClose={() => setOpen(false)}>
        {done ? <p role="status">The host forgets its configuration and restarts: set its password on its console.</p> :
          <form onSubmit={go}>
            <FormError errs={f.errs} />
            <Field label="Type the host's name to confirm" name="confirm" errs={f.errs}><input value={f.v.confirm} onInput={e => f.set('confirm', e.target.value)} autocomplete="off" /></Field>
            <div class="buttons"><button type="submit" class="danger" disabled={f.busy}>Reset and restart</button><button type="button" onClick={() => setOpen(false)}>Cancel</button></div>
          </form>}
      </Modal>}
    </section>
  );
}
