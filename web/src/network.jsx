// Networking: the virtual switches, their uplinks and VLANs.
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { useForm, Field, FormError } from './ui.jsx';

export function Networking() {
  const [sws, setSws] = useState(null);
  const [err, setErr] = useState('');
  const f = useForm({ name: '', uplink: '' });
  const load = () => api.get('/api/v1/switches').then(s => setSws(s || []), e => setErr(e.message));
  useEffect(() => { load(); }, []);
  async function add(e) {
    e.preventDefault();
    try { await f.submit(v => api.post('/api/v1/switches', { name: v.name, uplink: v.uplink || undefined }), ['name', 'uplink']); f.setV({ name: '', uplink: '' }); load(); } catch { /* beside the fields */ }
  }
  async function remove(name) {
    if (!confirm('Delete the switch ' + name + '?')) return;
    try { await api.del('/api/v1/switches/' + api.enc(name)); load(); } catch (x) { setErr(x.message); }
  }
  return (
    <section aria-labelledby="net-h">
      <h1 id="net-h">Virtual switches</h1>
      {err && <p class="error" role="alert">{err}</p>}
      {sws && <table class="list" aria-label="Virtual switches">
        <thead><tr><th>Name</th><th>Bridge</th><th>Uplink (VLAN)</th><th>Ports</th><th>MTU</th><th>State</th><th /></tr></thead>
        <tbody>
          {sws.length === 0 && <tr><td colSpan="7" class="empty">No virtual switch yet: VMs can use NAT meanwhile.</td></tr>}
          {sws.map(s => <tr><td>{s.name}</td><td>{s.bridge}</td><td>{s.uplink || 'none (internal)'}</td><td>{(s.ports || []).join(', ')}</td><td>{s.mtu || ''}</td>
            <td>{s.up ? 'up' : 'down'}{s.problem ? ': ' + s.problem : ''}</td><td><button class="danger" onClick={() => remove(s.name)}>Delete</button></td></tr>)}
        </tbody>
      </table>}
      <form onSubmit={add} aria-labelledby="add-sw-h" class="inline-form">
        <h2 id="add-sw-h">Add a switch</h2>
        <FormError errs={f.errs} />
        <Field label="Name" name="name" errs={f.errs}><input value={f.v.name} onInput={e => f.set('name', e.target.value)} /></Field>
        <Field label="Uplink NIC (optional: a host NIC, e.g. eth1)" name="uplink" errs={f.errs}><input value={f.v.uplink} onInput={e => f.set('uplink', e.target.value)} /></Field>
        <button type="submit" disabled={f.busy}>Add</button>
      </form>
    </section>
  );
}
