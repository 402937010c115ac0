// Recent tasks and events, always at the bottom of the page (as ESXi's
// Recent Tasks): one event stream per page, shared by whoever subscribes
// (the VM list follows state changes through it), and the task list polled
// while something runs.
import { useState, useEffect } from 'preact/hooks';
import * as api from './api.js';
import { Progress, when } from './ui.jsx';

const subs = new Set();
let recent = [];
let tasks = [];
let live = false;
const barSubs = new Set();
const tell = () => barSubs.forEach(fn => fn());

export function onEvent(fn) { subs.add(fn); return () => subs.delete(fn); }

export function startFeed() {
  recent = []; tasks = [];
  const stop = api.events(ev => {
    recent = [ev, ...recent].slice(0, 50);
    subs.forEach(fn => fn(ev));
    tell();
  }, s => { live = s; tell(); });
  let timer;
  let stopped = false;
  const poll = async () => {
    try { tasks = (await api.get('/api/v1/tasks')) || []; tell(); } catch { /* shown by the next poll */ }
    if (!stopped) timer = setTimeout(poll, tasks.some(t => t.state === 'running') ? 1000 : 5000);
  };
  poll();
  return () => { stopped = true; clearTimeout(timer); stop(); };
}

// refreshTasks asks for the tasks now (after starting one).
export async function refreshTasks() {
  try { tasks = (await api.get('/api/v1/tasks')) || []; tell(); } catch { /* the poll shows it */ }
}

export function RecentBar() {
  const [, force] = useState(0);
  // closed on a phone, where it would take half the screen
  const [open, setOpen] = useState(window.innerWidth > 700);
  useEffect(() => { const fn = () => force(n => n + 1); barSubs.add(fn); return () => barSubs.delete(fn); }, []);
  const shown = [...tasks].sort((a, b) => (b.started_at || '').localeCompare(a.started_at || '')).slice(0, 8);
  return (
    <aside class={'recent' + (open ? '' : ' closed')} aria-label="Recent tasks and events">
      <button class="recent-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
        Recent tasks and events <span class={'dot ' + (live ? 'live' : 'down')} title={live ? 'event stream connected' : 'event stream reconnecting'} />
      </button>
      {open && <div class="recent-body">
        <table class="tasks" aria-label="Recent tasks">
          <thead><tr><th>Task</th><th>Target</th><th>State</th><th>Progress</th><th>Started</th></tr></thead>
          <tbody>
            {shown.length === 0 && <tr><td colSpan="5" class="empty">No tasks yet.</td></tr>}
            {shown.map(t => <tr key={t.id}><td>{t.kind}</td><td>{t.target}</td><td class={'state-' + t.state}>{t.state}{t.error ? ': ' + t.error : ''}</td>
              <td>{t.state === 'running' ? <Progress value={t.done} max={t.total} label={t.kind + ' ' + t.target} /> : ''}</td><td>{when(t.started_at)}</td></tr>)}
          </tbody>
        </table>
        <ul class="events" aria-label="Recent events" aria-live="polite">
          {recent.slice(0, 8).map(e => <li>{when(e.time)} <strong>{e.name || e.vm_id}</strong> {e.type}{e.state ? ' → ' + e.state : ''}{e.detail ? ' (' + e.detail + ')' : ''}</li>)}
        </ul>
      </div>}
    </aside>
  );
}

// waitTask follows a task the page started (the answer of a POST that
// answered 202) until it ends, showing it in the recent tasks meanwhile:
// the finished task, or its error as a Problem.
export async function waitTask(t, onProgress = () => {}) {
  refreshTasks();
  for (let wait = 300; t.state === 'running'; wait = Math.min(wait * 2, 2000)) {
    await new Promise(r => setTimeout(r, wait));
    t = await api.get('/api/v1/tasks/' + api.enc(t.id));
    onProgress(t);
  }
  refreshTasks();
  if (t.state !== 'succeeded') throw new api.Problem(0, { detail: `${t.kind} ${t.state}${t.error ? ': ' + t.error : ''}` });
  return t;
}
