// A VM's longer life: its snapshots (the tree, take, revert, delete), its
// clones and templates (clone, mark as template, deploy), and the history
// of its definition. Loaded on first use; every long operation is a task
// shown in the recent tasks and followed here until it ends.
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { Link, useForm, Field, FormError, bytes, Modal, when } from './ui.jsx';
import { onEvent, waitTask } from './tasks.jsx';

const vmPath = vm => '/api/v1/vms/' + api.enc(vm.spec.id);
const live = vm => vm.runtime.state === 'running' || vm.runtime.state === 'paused';

// useVMFeed reloads when an event about the VM arrives (a snapshot taken
// elsewhere, a change by another user).
function useVMFeed(vm, load) {
  useEffect(() => {
    load();
    return onEvent(ev => { if (ev.vm_id === vm.spec.id && ev.type !== 'state') load(); });
  }, [vm.spec.id]);
}

// Running shows the task under way; run(fn) runs it and shows its problem.
function useRunning() {
  const [doing, setDoing] = useState('');
  const [err, setErr] = useState('');
  async function run(what, fn) {
    setDoing(what); setErr('');
    try { return await fn(); } catch (e) { setErr(e.message); return null; } finally { setDoing(''); }
  }
  return { doing, err, setErr, run };
}

export function SnapshotsTab({ vm }) {
  const [tree, setTree] = useState(null);
  const [taking, setTaking] = useState(false);
  const [asking, setAsking] = useState(null); // { kind: 'revert'|'delete', snap }
  const [cloning, setCloning] = useState(null);
  const r = useRunning();
  const load = () => api.get(vmPath(vm) + '/snapshots').then(setTree, e => r.setErr(e.message));
  useVMFeed(vm, load);
  const task = async (what, p) => { await r.run(what, async () => waitTask(await p())); load(); };
  if (!tree) return r.err ? <p class="error" role="alert">{r.err}</p> : <p>Loading…</p>;
  const snaps = tree.snapshots || [];
  const kids = {};
  for (const s of snaps) (kids[s.parent || ''] = kids[s.parent || ''] || []).push(s);
  const here = <li class="here" id="snap-here"><strong>You are here</strong> <span class="hint">(the VM now, {vm.runtime.state})</span></li>;
  const node = s => (
    <li key={s.id} data-snap={s.name}>
      <div class="snap">
        <span class="snap-name">{s.name}</span>
        <span class="hint">{when(s.created_at)} · {s.memory ? 'with memory (' + bytes(s.memory_bytes) + ', ' + s.state + ')' : 'disks only (' + s.state + ')'}</span>
        {s.description && <span class="snap-desc">{s.description}</span>}
        <span class="actions">
          <button disabled={!!r.doing} onClick={() => setAsking({ kind: 'revert', snap: s })}>Revert…</button>
          <button disabled={!!r.doing} onClick={() => setCloning(s)}>Clone…</button>
          <button class="danger" disabled={!!r.doing} onClick={() => setAsking({ kind: 'delete', snap: s })}>Delete…</button>
        </span>
      </div>
      {((kids[s.id] || []).length > 0 || tree.current === s.id) && <ul>
        {(kids[s.id] || []).map(node)}
        {tree.current === s.id && here}
      </ul>}
    </li>);
  return (
    <section aria-labelledby="snaps-h" id="snapshots">
      <div class="toolbar">
        <h2 id="snaps-h">Snapshots</h2>
        <button onClick={() => setTaking(true)} disabled={!!r.doing || vm.spec.template} id="snap-take">Take a snapshot</button>
      </div>
      {r.doing && <p class="notice" role="status" id="snap-doing">{r.doing}… (a task: see the recent tasks)</p>}
      {r.err && <p class="error banner" role="alert" id="snap-err">{r.err}</p>}
      {snaps.length === 0 && <p class="hint">No snapshots yet. A snapshot keeps the disks, the UEFI variables and the definition (and with memory, the running state) to come back to.</p>}
      <ul class="snap-tree" aria-label="Snapshot tree">
        {(kids[''] || []).map(node)}
        {!tree.current && here}
      </ul>
      {taking && <TakeSnapshot vm={vm} onClose={() => setTaking(false)} onTask={p => { setTaking(false); task('Taking the snapshot', p); }} />}
      {asking && asking.kind === 'revert' && <RevertSnapshot vm={vm} snap={asking.snap} onClose={() => setAsking(null)}
        onTask={p => { setAsking(null); task('Reverting to ' + asking.snap.name, p); }} />}
      {asking && asking.kind === 'delete' && <Modal title={'Delete snapshot ' + asking.snap.name} onClose={() => setAsking(null)}>
        <p>The snapshot <strong>{asking.snap.name}</strong> goes; its data is merged into what rests on it, so the other snapshots and the VM keep theirs.</p>
        <div class="buttons">
          <button class="danger" id="snap-delete-yes" onClick={() => { const s = asking.snap; setAsking(null); task('Deleting ' + s.name, () => api.del(vmPath(vm) + '/snapshots/' + api.enc(s.id))); }}>Delete</button>
          <button onClick={() => setAsking(null)}>Cancel</button>
        </div>
      </Modal>}
      {cloning && <CloneVM vm={vm} snap={cloning} onClose={() => setCloning(null)} />}
    </section>
  );
}

function TakeSnapshot({ vm, onClose, onTask }) {
  const f = useForm({ name: '', description: '', memory: live(vm) });
  async function save(e) {
    e.preventDefault();
    const v = f.v;
    // the request is checked (422) before the task starts: its problems sit beside the fields
    try {
      const t = await f.submit(() => api.post(vmPath(vm) + '/snapshots', { name: v.name, description: v.description, memory: live(vm) && v.memory }), ['name', 'description', 'memory']);
      onTask(() => t);
    } catch { /* beside the fields */ }
  }
  return (
    <Modal title={'Take a snapshot of ' + vm.spec.name} onClose={onClose}>
      <form onSubmit={save} noValidate class="snap-form">
        <FormError errs={f.errs} />
        <Field label="Name" name="name" errs={f.errs}><input value={f.v.name} onInput={e => f.set('name', e.target.value)} /></Field>
        <Field label="Description" name="description" errs={f.errs}><textarea rows="3" value={f.v.description} onInput={e => f.set('description', e.target.value)} /></Field>
        {live(vm) ? <label class="check"><input type="checkbox" name="memory" checked={f.v.memory} onChange={e => f.set('memory', e.target.checked)} /> With memory: a revert resumes the guest where it is now</label>
          : <p class="hint">The VM is stopped: the snapshot keeps its disks, UEFI variables and definition.</p>}
        {f.errs.memory && <div class="error" role="alert" data-field="memory">{f.errs.memory}</div>}
        <div class="buttons"><button type="submit" disabled={f.busy}>Take (a task)</button><button type="button" onClick={onClose}>Cancel</button></div>
      </form>
    </Modal>
  );
}

function RevertSnapshot({ vm, snap, onClose, onTask }) {
  const [start, setStart] = useState(false);
  const lost = live(vm) ? "the guest's running state and every disk write" : 'every disk write';
  return (
    <Modal title={'Revert to ' + snap.name} onClose={onClose}>
      <p id="revert-lost">The VM goes back to <strong>{snap.name}</strong> ({when(snap.created_at)}). Lost: {lost} since then, and changes to its
        definition, unless kept in another snapshot (take one first to keep them). The snapshots stay.</p>
      <p>{snap.memory ? `The guest resumes as it was (${snap.state}).` : 'The snapshot has no memory: the VM is left stopped.'}</p>
      {!snap.memory && <label class="check"><input type="checkbox" checked={start} onChange={e => setStart(e.target.checked)} /> Start it after the revert</label>}
      <div class="buttons">
        <button class="danger" id="revert-yes" onClick={() => onTask(() => api.post(vmPath(vm) + '/snapshots/' + api.enc(snap.id) + '/revert', { start }))}>Revert</button>
        <button onClick={onClose}>Cancel</button>
      </div>
    </Modal>
  );
}

// useTaskForm is a form whose submit starts a task (start(values) answers
// it) and follows it to its end: progress meanwhile, made(values, task)
// once it succeeded; the request's problems beside their fields.
function useTaskForm(initial, fields, start, result) {
  const f = useForm(initial);
  const [progress, setProgress] = useState(null);
  const [made, setMade] = useState(null);
  async function save(e) {
    e.preventDefault();
    try {
      await f.submit(async v => setMade(result(v, await waitTask(await start(v), setProgress))), fields);
    } catch { /* beside the fields */ } finally { setProgress(null); }
  }
  return { f, progress, made, save };
}

// CloneVM makes a new VM of a stopped VM or of one of its snapshots.
export function CloneVM({ vm, snap, onClose }) {
  const { f, progress, made, save } = useTaskForm({ name: vm.spec.name + '-clone', linked: true, start: false }, ['name', 'linked', 'snapshot'],
    v => api.post(vmPath(vm) + '/clone', { name: v.name, linked: v.linked, snapshot: snap ? snap.id : undefined, start: v.start }),
    (v, _) => v.name);
  return (
    <Modal title={'Clone ' + vm.spec.name + (snap ? ' as in ' + snap.name : '')} onClose={onClose}>
      {made ? <>
        <p class="notice" role="status" id="clone-made">Made <Link href={'/vms/' + api.enc(made)} onClick={onClose}>{made}</Link>.</p>
        <div class="buttons"><button onClick={onClose}>Close</button></div>
      </> : <form onSubmit={save} noValidate>
        <FormError errs={f.errs} />
        <Field label="New VM's name" name="name" errs={f.errs}><input value={f.v.name} onInput={e => f.set('name', e.target.value)} /></Field>
        <fieldset>
          <legend>Disks</legend>
          <label class="check"><input type="radio" name="kind" value="linked" checked={f.v.linked} onChange={() => f.set('linked', true)} /> Linked: each disk an overlay on a base kept once (fast, small)</label>
          <label class="check"><input type="radio" name="kind" value="full" checked={!f.v.linked} onChange={() => f.set('linked', false)} /> Full: each disk copied whole</label>
          {f.errs.linked && <div class="error" role="alert" data-field="linked">{f.errs.linked}</div>}
        </fieldset>
        <label class="check"><input type="checkbox" checked={f.v.start} onChange={e => f.set('start', e.target.checked)} /> Start it once made</label>
        {progress && <p class="notice" role="status">Cloning… {progress.total ? bytes(progress.done) + ' of ' + bytes(progress.total) : ''}</p>}
        <div class="buttons"><button type="submit" disabled={f.busy}>Clone (a task)</button><button type="button" onClick={onClose}>Cancel</button></div>
      </form>}
    </Modal>
  );
}

// Deploy makes COUNT linked (or full) clones of a template, named by a pattern.
export function Deploy({ vm, onClose }) {
  const { f, progress, made, save } = useTaskForm({ count: '1', name_pattern: vm.spec.name + '-{n}', first: '1', full: false, start: false }, ['count', 'name_pattern', 'first', 'full'],
    v => api.post(vmPath(vm) + '/deploy', { count: Number(v.count), name_pattern: v.name_pattern, first: Number(v.first), full: v.full, start: v.start }),
    (_, t) => t.results || []);
  return (
    <Modal title={'Deploy from ' + vm.spec.name} onClose={onClose}>
      {made ? <>
        <p class="notice" role="status" id="deploy-made">Deployed {made.length} VM{made.length === 1 ? '' : 's'}: see the <Link href="/vms" onClick={onClose}>list</Link>.</p>
        <div class="buttons"><button onClick={onClose}>Close</button></div>
      </> : <form onSubmit={save} noValidate>
        <FormError errs={f.errs} />
        <div class="row">
          <Field label="How many" name="count" errs={f.errs}><input type="number" min="1" max="100" value={f.v.count} onInput={e => f.set('count', e.target.value)} /></Field>
          <Field label="First number" name="first" errs={f.errs}><input type="number" min="0" value={f.v.first} onInput={e => f.set('first', e.target.value)} /></Field>
        </div>
        <Field label="Names" name="name_pattern" errs={f.errs} hint="{n} is each one's number, e.g. web-{n}"><input value={f.v.name_pattern} onInput={e => f.set('name_pattern', e.target.value)} /></Field>
        <label class="check"><input type="checkbox" checked={f.v.full} onChange={e => f.set('full', e.target.checked)} /> Full copies (otherwise linked to the template's disks)</label>
        <label class="check"><input type="checkbox" checked={f.v.start} onChange={e => f.set('start', e.target.checked)} /> Start each once made</label>
        {progress && <p class="notice" role="status">Deploying… {(progress.results || []).length} made</p>}
        <div class="buttons"><button type="submit" disabled={f.busy}>Deploy (a task)</button><button type="button" onClick={onClose}>Cancel</button></div>
      </form>}
    </Modal>
  );
}

// HistoryTab lists every version of the VM's definition, newest first, each
// with who changed it, when, why and what (the API's diff to the one before).
export function HistoryTab({ vm }) {
  const [vs, setVs] = useState(null);
  const [diffs, setDiffs] = useState({});
  const [shown, setShown] = useState(20);
  const [reverting, setReverting] = useState(null);
  const [err, setErr] = useState('');
  const load = () => api.get(vmPath(vm) + '/history').then(v => setVs((v || []).slice().reverse()), e => setErr(e.message));
  useVMFeed(vm, load);
  useEffect(() => {
    if (!vs) return;
    for (const v of vs.slice(0, shown)) {
      if (v.version === 1 || diffs[v.version]) continue;
      api.get(`${vmPath(vm)}/history/diff?from=${v.version - 1}&to=${v.version}`)
        .then(d => setDiffs(m => ({ ...m, [v.version]: d })), e => setDiffs(m => ({ ...m, [v.version]: { error: e.message } })));
    }
  }, [vs, shown]);
  if (err) return <p class="error" role="alert">{err}</p>;
  if (!vs) return <p>Loading…</p>;
  const what = v => {
    if (v.version === 1) return 'created';
    const d = diffs[v.version];
    if (!d) return '…';
    if (d.error) return d.error;
    if (!d.changes.length) return 'no change to the definition';
    return <Changes changes={d.changes} />;
  };
  return (
    <section aria-labelledby="hist-h" id="history">
      <h2 id="hist-h">History of the definition</h2>
      <table class="list" aria-label="Versions of the definition">
        <thead><tr><th>Version</th><th>When</th><th>Who</th><th>Why</th><th>What changed</th><th></th></tr></thead>
        <tbody>
          {vs.slice(0, shown).map(v => <tr key={v.version} data-version={v.version}>
            <td>{v.version}</td><td>{when(v.time)}</td><td>{v.user}</td><td>{v.reason || ''}</td><td>{what(v)}</td>
            <td class="actions">{v.version !== vs[0].version && <button onClick={() => setReverting(v)}>Revert to this…</button>}</td>
          </tr>)}
        </tbody>
      </table>
      {vs.length > shown && <button onClick={() => setShown(shown + 20)}>Show older versions</button>}
      {reverting && <RevertDefinition vm={vm} version={reverting} onClose={() => { setReverting(null); load(); }} />}
    </section>
  );
}

const show = x => x === undefined ? '—' : JSON.stringify(x);

function Changes({ changes }) {
  return changes.map(c => <div class="mono">{c.field}: {show(c.old)} → {show(c.new)}{c.restart ? ' (at the next start)' : ''}</div>);
}

// RevertDefinition puts the definition back as it was at a version (a new
// version), first showing what would change (the API's dry run).
function RevertDefinition({ vm, version, onClose }) {
  const [diff, setDiff] = useState(null);
  const f = useForm({ reason: '' });
  const body = dry => ({ version: version.version, reason: f.v.reason || undefined, dry_run: dry || undefined });
  useEffect(() => { api.post(vmPath(vm) + '/history/revert', body(true)).then(setDiff, e => f.setErrs({ '': e.message })); }, []);
  async function save(e) {
    e.preventDefault();
    try { await f.submit(() => api.post(vmPath(vm) + '/history/revert', body(false)), ['reason']); onClose(); } catch { /* shown */ }
  }
  return (
    <Modal title={'Revert the definition to version ' + version.version} onClose={onClose}>
      <form onSubmit={save} noValidate>
        <FormError errs={f.errs} />
        {!diff ? <p>Loading…</p> : <div id="def-revert-diff">
          {diff.changes.length ? <><p>What changes:</p><Changes changes={diff.changes} /></> : <p>Nothing changes: the definition is already so.</p>}
          {diff.needs_restart && <p class="hint">Some of it takes effect at the VM's next start{diff.running ? ': a running VM must be stopped first' : ''}.</p>}
        </div>}
        <Field label="Why (kept in the history)" name="reason" errs={f.errs}><input value={f.v.reason} onInput={e => f.set('reason', e.target.value)} /></Field>
        <div class="buttons"><button type="submit" disabled={f.busy || !diff} id="def-revert-yes">Revert</button><button type="button" onClick={onClose}>Cancel</button></div>
      </form>
    </Modal>
  );
}
