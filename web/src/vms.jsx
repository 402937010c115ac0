// Virtual machines: the live list (state changes arrive by the event
// stream), one VM's page with its power actions and consoles, and the form
// that creates or edits one.
import { useState, useEffect, useMemo, useRef } from 'preact/hooks';
import * as api from './api.js';
import { Link, navigate, useForm, Field, FormError, bytes, Modal, lazy } from './ui.jsx';
import { onEvent } from './tasks.jsx';
const ConsolePanel = lazy(() => import('./console.jsx'), 'ConsolePanel');
const work = () => import('./vmwork.jsx');
const SnapshotsTab = lazy(work, 'SnapshotsTab');
const HistoryTab = lazy(work, 'HistoryTab');
const CloneVM = lazy(work, 'CloneVM');
const Deploy = lazy(work, 'Deploy');

const PAGE = 50;
const actions = {
  stopped: ['start'], crashed: ['start'], running: ['shutdown', 'stop', 'reset', 'pause'],
  paused: ['resume', 'stop'], starting: ['stop'], stopping: ['stop'],
};

export function VMList() {
  const [vms, setVMs] = useState(null);
  const [err, setErr] = useState('');
  const [filter, setFilter] = useState('');
  const [page, setPage] = useState(0);
  useEffect(() => {
    let alive = true;
    const load = () => api.get('/api/v1/vms').then(v => alive && setVMs(v || []), e => alive && setErr(e.message));
    load();
    const off = onEvent(ev => {
      if (ev.type === 'state') {
        setVMs(list => list && list.map(vm => vm.spec.id === ev.vm_id ? { ...vm, runtime: { ...vm.runtime, state: ev.state } } : vm));
      } else if (ev.type === 'deleted') {
        setVMs(list => list && list.filter(vm => vm.spec.id !== ev.vm_id));
      } else if (ev.type === 'created' || ev.type === 'updated') {
        api.get('/api/v1/vms/' + api.enc(ev.vm_id)).then(vm => setVMs(list => {
          if (!list) return list;
          const i = list.findIndex(x => x.spec.id === vm.spec.id);
          return i < 0 ? [...list, vm] : list.map((x, j) => j === i ? vm : x);
        }), () => {});
      } else if (ev.type === 'overflow') load();
    });
    return () => { alive = false; off(); };
  }, []);
  useEffect(() => { if (vms) performance.mark('plinth-vms-drawn'); }, [vms]);
  const shown = useMemo(() => {
    if (!vms) return [];
    const f = filter.toLowerCase();
    return vms.filter(vm => !f || vm.spec.name.toLowerCase().includes(f) || vm.runtime.state.includes(f))
      .sort((a, b) => a.spec.name.localeCompare(b.spec.name));
  }, [vms, filter]);
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  const p = Math.min(page, pages - 1);
  return (
    <section aria-labelledby="vms-h">
      <div class="toolbar">
        <h1 id="vms-h">Virtual machines</h1>
        <Link class="button" href="/vms/new">Create VM</Link>
        <label class="filter">Filter <input type="search" value={filter} onInput={e => { setFilter(e.target.value); setPage(0); }} placeholder="name or state" /></label>
      </div>
      {err && <p class="error" role="alert">{err}</p>}
      {!vms && !err && <p>Loading…</p>}
      {vms && <>
        <table class="list" id="vm-list" aria-label="Virtual machines">
          <thead><tr><th>Name</th><th>State</th><th>CPUs</th><th>Memory</th><th>Disks</th></tr></thead>
          <tbody>
            {shown.length === 0 && <tr><td colSpan="5" class="empty">{vms.length ? 'No VM matches.' : 'No VMs yet: create one.'}</td></tr>}
            {shown.slice(p * PAGE, (p + 1) * PAGE).map(vm => (
              <tr key={vm.spec.id} data-vm={vm.spec.name}>
                <td><Link href={'/vms/' + api.enc(vm.spec.name)}>{vm.spec.name}</Link></td>
                <td class={'state state-' + vm.runtime.state}>{vm.runtime.state}</td>
                <td>{vm.spec.cpu.sockets * vm.spec.cpu.cores * vm.spec.cpu.threads}</td>
                <td>{bytes(vm.spec.memory_mib * 1048576)}</td>
                <td>{(vm.spec.disks || []).length}</td>
              </tr>))}
          </tbody>
        </table>
        {pages > 1 && <nav class="pager" aria-label="Pages of VMs">
          <button disabled={p === 0} onClick={() => setPage(p - 1)}>Previous</button>
          <span>Page {p + 1} of {pages} ({shown.length} VMs)</span>
          <button disabled={p >= pages - 1} onClick={() => setPage(p + 1)}>Next</button>
        </nav>}
      </>}
    </section>
  );
}

export function VMPage({ id }) {
  const [vm, setVM] = useState(null);
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState('');
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [tab, setTab] = useState('consoles');
  const [dialog, setDialog] = useState('');
  const load = () => api.get('/api/v1/vms/' + api.enc(id)).then(setVM, e => setErr(e.message));
  const cur = useRef(null);
  cur.current = vm;
  useEffect(() => {
    load();
    return onEvent(ev => {
      if (cur.current && ev.vm_id === cur.current.spec.id) {
        if (ev.type === 'state') setVM(v => v && { ...v, runtime: { ...v.runtime, state: ev.state } });
        else if (ev.type === 'deleted') navigate('/vms');
        else load();
      }
    });
  }, [id]);
  async function act(a) {
    setBusy(a); setErr('');
    try {
      const body = a === 'shutdown' ? { timeout_seconds: 120 } : undefined;
      setVM(await api.post(`/api/v1/vms/${api.enc(vm.spec.id)}/${a}`, body));
    } catch (e) { setErr(e.message); } finally { setBusy(''); }
  }
  // template marks a stopped VM as a template (it never starts or
  // changes; VMs are deployed from it), or makes it a VM again.
  async function template(on) {
    setBusy('template'); setErr('');
    try { setVM(await api.post(`/api/v1/vms/${api.enc(vm.spec.id)}/template`, { template: on })); } catch (e) { setErr(e.message); } finally { setBusy(''); }
  }
  if (err && !vm) return <p class="error" role="alert">{err}</p>;
  if (!vm) return <p>Loading…</p>;
  const s = vm.spec;
  const state = vm.runtime.state;
  const stopped = state === 'stopped' || state === 'crashed';
  if (editing) return <VMForm initial={s} onDone={v => { setEditing(false); if (v) setVM(v); }} />;
  return (
    <section aria-labelledby="vm-h">
      <div class="toolbar">
        <h1 id="vm-h">{s.name}</h1>
        <span class={'state state-' + state} id="vm-state" aria-live="polite">{state}</span>
        {s.template && <span class="badge" id="vm-template">template</span>}
        {(s.template ? [] : actions[state] || []).map(a => <button key={a} disabled={!!busy} onClick={() => act(a)} data-action={a}>{a[0].toUpperCase() + a.slice(1)}</button>)}
        <button id="vm-edit" disabled={s.template || (state !== 'stopped' && state !== 'crashed')} onClick={() => setEditing(true)} title="A VM can be edited when stopped">Edit</button>
        <button id="vm-clone" onClick={() => setDialog('clone')} title="A stopped VM can be cloned (a running one from a snapshot)">Clone…</button>
        {s.template ? <>
          <button id="vm-deploy" onClick={() => setDialog('deploy')}>Deploy…</button>
          <button id="vm-untemplate" disabled={!!busy} onClick={() => template(false)}>Make a VM again</button>
        </> : <button id="vm-template-mark" disabled={!!busy || !stopped} onClick={() => template(true)} title="A stopped VM can become a template">Mark as template</button>}
        <button class="danger" disabled={state === 'running' || state === 'paused'} onClick={() => setDeleting(true)}>Delete</button>
      </div>
      {err && <p class="error" role="alert">{err}</p>}
      <dl class="facts">
        <dt>vCPUs</dt><dd>{s.cpu.sockets * s.cpu.cores * s.cpu.threads} ({s.cpu.sockets} socket × {s.cpu.cores} cores × {s.cpu.threads} threads)</dd>
        <dt>Memory</dt><dd>{bytes(s.memory_mib * 1048576)}</dd>
        <dt>Firmware</dt><dd>{s.firmware || 'bios'}</dd>
        <dt>Disks</dt><dd>{(s.disks || []).map(d => <div>{d.datastore}:{d.path} ({d.bus || 'default bus'})</div>)}{!(s.disks || []).length && 'none'}</dd>
        <dt>CD-ROM</dt><dd>{s.cdrom ? s.cdrom.datastore + ':' + s.cdrom.path : 'none'}</dd>
        <dt>NICs</dt><dd>{(s.nics || []).map(n => <div>{n.nat ? 'NAT' : 'switch ' + n.switch} {n.mac}</div>)}{!(s.nics || []).length && 'none'}</dd>
        <dt>Autostart</dt><dd>{s.autostart && s.autostart.enabled ? 'yes' : 'no'}</dd>
        {vm.runtime.last_exit && <><dt>Last exit</dt><dd>{vm.runtime.last_exit.reason} {vm.runtime.last_exit.detail}</dd></>}
      </dl>
      <div class="tabs vm-tabs" role="tablist" aria-label="About this VM">
        {[['consoles', 'Consoles'], ['snapshots', 'Snapshots'], ['history', 'History']].map(([k, label]) =>
          <button role="tab" key={k} id={'vm-tab-' + k} aria-selected={tab === k} onClick={() => setTab(k)}>{label}</button>)}
      </div>
      {tab === 'consoles' && <ConsolePanel vm={vm} />}
      {tab === 'snapshots' && <SnapshotsTab vm={vm} />}
      {tab === 'history' && <HistoryTab vm={vm} />}
      {dialog === 'clone' && <CloneVM vm={vm} onClose={() => setDialog('')} />}
      {dialog === 'deploy' && <Deploy vm={vm} onClose={() => setDialog('')} />}
      {deleting && <DeleteVM vm={vm} onClose={() => setDeleting(false)} />}
    </section>
  );
}

function DeleteVM({ vm, onClose }) {
  const [disks, setDisks] = useState(false);
  const [err, setErr] = useState('');
  async function go() {
    try {
      await api.del(`/api/v1/vms/${api.enc(vm.spec.id)}${disks ? '?disks=true' : ''}`);
      onClose(); navigate('/vms');
    } catch (e) { setErr(e.message); }
  }
  return (
    <Modal title={'Delete ' + vm.spec.name} onClose={onClose}>
      {err && <p class="error" role="alert">{err}</p>}
      <label class="check"><input type="checkbox" checked={disks} onChange={e => setDisks(e.target.checked)} /> Also delete its disk files (those no other VM uses)</label>
      <div class="buttons"><button class="danger" onClick={go}>Delete</button><button onClick={onClose}>Cancel</button></div>
    </Modal>
  );
}

export function VMCreate() {
  return <VMForm onDone={vm => navigate(vm ? '/vms/' + api.enc(vm.spec.name) : '/vms')} />;
}

const fields = ['name', 'cpus', 'memory_mib', 'firmware', 'disks', 'cdrom', 'nics', 'autostart'];

// VMForm makes a VM (initial empty) or changes a stopped one. A disk that
// does not exist yet is created first with the size given.
function VMForm({ initial, onDone }) {
  const edit = !!initial;
  const [dss, setDss] = useState([]);
  const [isos, setIsos] = useState([]);
  const [switches, setSwitches] = useState([]);
  const s = initial || {};
  const f = useForm({
    name: s.name || '', cpus: s.cpu ? s.cpu.sockets * s.cpu.cores * s.cpu.threads : 1,
    memory_mib: s.memory_mib || 512, firmware: s.firmware || 'bios',
    disks: (s.disks || []).map(d => ({ ...d, size_gib: '' })),
    cdrom: s.cdrom ? s.cdrom.datastore + ':' + s.cdrom.path : '',
    nics: (s.nics || []).map(n => ({ ...n, net: n.nat ? 'nat' : n.switch })),
    autostart: !!(s.autostart && s.autostart.enabled),
  });
  useEffect(() => {
    api.get('/api/v1/datastores').then(async list => {
      list = list || [];
      setDss(list);
      if (!edit && list.length && f.v.disks.length === 0) f.set('disks', [{ datastore: list[0].name, path: '', size_gib: '8', new: true }]);
      const found = [];
      for (const ds of list) {
        for (const dir of ['', 'iso', 'isos']) {
          try {
            const ents = await api.get(`/api/v1/datastores/${api.enc(ds.name)}/files?path=${api.enc(dir)}`);
            for (const e of ents || []) if (e.kind === 'file' && /\.iso$/i.test(e.name)) found.push(ds.name + ':' + (dir ? dir + '/' : '') + e.name);
          } catch { /* no such folder */ }
        }
      }
      setIsos(found);
    }, () => {});
    api.get('/api/v1/switches').then(l => setSwitches(l || []), () => {});
  }, []);
  const setDisk = (i, k, val) => f.set('disks', f.v.disks.map((d, j) => j === i ? { ...d, [k]: val } : d));
  const setNIC = (i, val) => f.set('nics', f.v.nics.map((n, j) => j === i ? { ...n, net: val } : n));
  async function save(e) {
    e.preventDefault();
    const v = f.v;
    const names = [...fields, ...v.disks.flatMap((_, i) => [`disks[${i}]`, `disks[${i}].path`, `disks[${i}].size_gib`]), ...v.nics.map((_, i) => `nics[${i}]`)];
    try {
      const vm = await f.submit(async () => {
        // a new disk's path defaults to NAME/diskN.qcow2 (none without a name:
        // the API then names both problems)
        const disks = v.disks.map((d, i) => ({ datastore: d.datastore, path: d.path || (v.name ? `${v.name}/disk${i}.qcow2` : ''), bus: d.bus || undefined, format: d.format || undefined }));
        const [cdDs, ...cdPath] = v.cdrom.split(':');
        const spec = {
          ...(initial || {}),
          name: v.name, cpu: { sockets: 1, cores: Number(v.cpus), threads: 1 }, memory_mib: Number(v.memory_mib),
          firmware: v.firmware, disks,
          cdrom: v.cdrom ? { datastore: cdDs, path: cdPath.join(':') } : undefined,
          nics: v.nics.map(n => n.net === 'nat' ? { model: n.model, mac: n.mac, nat: true } : { model: n.model, mac: n.mac, switch: n.net }),
          serial: initial ? initial.serial : true, vnc: initial ? initial.vnc : true,
          autostart: { ...((initial && initial.autostart) || {}), enabled: v.autostart },
        };
        if (!Number.isInteger(spec.cpu.cores) || spec.cpu.cores < 1) throw new api.Problem(422, { problems: [{ field: 'cpus', message: 'must be a whole number, at least 1' }] });
        // create the new disks first, each a problem beside its own row
        for (let i = 0; i < v.disks.length; i++) {
          const d = v.disks[i];
          if (!d.new || !disks[i].path) continue;
          const size = Math.round(Number(d.size_gib) * 1073741824);
          if (!(size > 0)) throw new api.Problem(422, { problems: [{ field: `disks[${i}].size_gib`, message: 'a new disk needs its size in GiB' }] });
          try {
            await api.post(`/api/v1/datastores/${api.enc(d.datastore)}/disks`, { path: disks[i].path, size_bytes: size });
          } catch (err) {
            if (err.status !== 409) {
              err.problems = [{ field: `disks[${i}].path`, message: err.message }];
              throw err;
            }
          }
        }
        try {
          return await (edit ? api.put('/api/v1/vms/' + api.enc(initial.id), spec) : api.post('/api/v1/vms', spec));
        } catch (err) {
          // the API names cpu.cores and cdrom.path: the form has one field for each
          if (err.problems) err.problems = err.problems.map(p => ({ ...p, field: p.field.replace(/^cpu(\..*)?$/, 'cpus').replace(/^cdrom\..*$/, 'cdrom') }));
          throw err;
        }
      }, names);
      onDone(vm);
    } catch { /* beside the fields */ }
  }
  return (
    <form class="vm-form" onSubmit={save} aria-labelledby="form-h" noValidate>
      <h1 id="form-h">{edit ? 'Edit ' + s.name : 'Create a virtual machine'}</h1>
      <FormError errs={f.errs} />
      <Field label="Name" name="name" errs={f.errs}><input value={f.v.name} onInput={e => f.set('name', e.target.value)} required /></Field>
      <div class="row">
        <Field label="CPUs" name="cpus" errs={f.errs}><input type="number" min="1" value={f.v.cpus} onInput={e => f.set('cpus', e.target.value)} /></Field>
        <Field label="Memory (MiB)" name="memory_mib" errs={f.errs}><input type="number" min="16" step="128" value={f.v.memory_mib} onInput={e => f.set('memory_mib', e.target.value)} /></Field>
        <Field label="Firmware" name="firmware" errs={f.errs}><select value={f.v.firmware} onChange={e => f.set('firmware', e.target.value)}><option value="bios">BIOS</option><option value="uefi">UEFI</option></select></Field>
      </div>
      <fieldset>
        <legend>Disks</legend>
        {f.v.disks.map((d, i) => (
          <div class="row disk" key={i}>
            <Field label={`Disk ${i + 1} datastore`} name={`disks[${i}]`} errs={f.errs}><select value={d.datastore} onChange={e => setDisk(i, 'datastore', e.target.value)}>{dss.map(x => <option>{x.name}</option>)}</select></Field>
            <Field label="Path" name={`disks[${i}].path`} errs={f.errs} hint={d.new ? 'empty: NAME/diskN.qcow2' : ''}><input value={d.path} onInput={e => setDisk(i, 'path', e.target.value)} placeholder={`${f.v.name || 'NAME'}/disk${i}.qcow2`} /></Field>
            {d.new && <Field label="New disk size (GiB)" name={`disks[${i}].size_gib`} errs={f.errs}><input type="number" min="1" value={d.size_gib} onInput={e => setDisk(i, 'size_gib', e.target.value)} /></Field>}
            <label class="check"><input type="checkbox" checked={!!d.new} onChange={e => setDisk(i, 'new', e.target.checked)} /> create it</label>
            <button type="button" onClick={() => f.set('disks', f.v.disks.filter((_, j) => j !== i))} aria-label={`Remove disk ${i + 1}`}>Remove</button>
          </div>))}
        <button type="button" disabled={!dss.length} onClick={() => f.set('disks', [...f.v.disks, { datastore: dss[0].name, path: '', size_gib: '8', new: true }])}>Add a disk</button>
        {!dss.length && <p class="hint">This host has no datastore.</p>}
      </fieldset>
      <Field label="CD-ROM (an ISO on a datastore)" name="cdrom" errs={f.errs}>
        <select value={f.v.cdrom} onChange={e => f.set('cdrom', e.target.value)}><option value="">none</option>{[...new Set([...isos, ...(f.v.cdrom ? [f.v.cdrom] : [])])].map(x => <option>{x}</option>)}</select>
      </Field>
      <fieldset>
        <legend>Network</legend>
        {f.v.nics.map((n, i) => (
          <div class="row" key={i}>
            <Field label={`NIC ${i + 1}`} name={`nics[${i}]`} errs={f.errs}><select value={n.net} onChange={e => setNIC(i, e.target.value)}><option value="nat">NAT</option>{switches.map(sw => <option>{sw.name}</option>)}</select></Field>
            <button type="button" onClick={() => f.set('nics', f.v.nics.filter((_, j) => j !== i))} aria-label={`Remove NIC ${i + 1}`}>Remove</button>
          </div>))}
        <button type="button" onClick={() => f.set('nics', [...f.v.nics, { net: switches.length ? switches[0].name : 'nat' }])}>Add a NIC</button>
      </fieldset>
      <label class="check"><input type="checkbox" checked={f.v.autostart} onChange={e => f.set('autostart', e.target.checked)} /> Start with the host (autostart)</label>
      <div class="buttons">
        <button type="submit" disabled={f.busy}>{edit ? 'Save' : 'Create'}</button>
        <button type="button" onClick={() => onDone(null)}>Cancel</button>
      </div>
    </form>
  );
}
