// A VM's consoles: the serial console in a terminal (xterm.js) and the
// screen over VNC (noVNC), each in the VM's page or in a window of its own,
// with paste, a keyboard layout for typing into the screen, and the serial
// console's log as a download.
import { useState, useEffect, useRef } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import RFB from '@novnc/novnc';
import * as api from './api.js';
import { layoutNames, typeInto } from './keymap.js';

export function ConsolePanel({ vm }) {
  const s = vm.spec;
  const running = vm.runtime.state === 'running' || vm.runtime.state === 'paused';
  const [kind, setKind] = useState(s.serial ? 'serial' : 'vnc');
  const [err, setErr] = useState('');
  function popout() {
    window.open(`/console/${api.enc(s.id)}/${kind}`, 'console-' + s.id + '-' + kind, 'width=1060,height=760');
  }
  async function log() {
    setErr('');
    try { await api.download(`/api/v1/vms/${api.enc(s.id)}/console`, s.name + '-console.log'); } catch (e) { setErr(e.message); }
  }
  return (
    <section class="consoles" aria-label="Consoles">
      <div class="tabs" role="tablist">
        {s.serial && <button role="tab" aria-selected={kind === 'serial'} onClick={() => setKind('serial')} id="tab-serial">Serial console</button>}
        {s.vnc && <button role="tab" aria-selected={kind === 'vnc'} onClick={() => setKind('vnc')} id="tab-vnc">Screen (VNC)</button>}
        <button onClick={popout} disabled={!running} id="popout">Open in a window</button>
        {s.serial && <button onClick={log}>Download the console log</button>}
      </div>
      {err && <p class="error" role="alert">{err}</p>}
      {!running ? <p class="notice">The consoles open when the VM runs.</p>
        : kind === 'serial' ? <Serial key={'s' + s.id + vm.runtime.started_at} id={s.id} /> : <Screen key={'v' + s.id + vm.runtime.started_at} id={s.id} />}
    </section>
  );
}

export function ConsoleWindow({ id, kind }) {
  useEffect(() => { document.title = 'Console: ' + id; }, []);
  return <div class="console-window">{kind === 'serial' ? <Serial id={id} full /> : <Screen id={id} full />}</div>;
}

function Status({ state }) {
  return <span class={'conn conn-' + state} role="status">{state}</span>;
}

function Serial({ id, full }) {
  const el = useRef();
  const [state, setState] = useState('connecting');
  const ws = useRef(null);
  useEffect(() => {
    const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el.current);
    fit.fit();
    const onResize = () => fit.fit();
    window.addEventListener('resize', onResize);
    let sock;
    let closed = false;
    let timer = null;
    let tries = 0;
    const enc = new TextEncoder();
    // A connection lost while the page shows the console (mgmtd restarted,
    // the network blinked) is made again, a little later each time; each
    // attach replays the console's kept tail, so the terminal starts over.
    const again = () => {
      if (closed) return;
      const wait = Math.min(1000 * 2 ** tries, 15000);
      tries++;
      timer = setTimeout(connect, wait);
    };
    const connect = () => {
      timer = null;
      if (closed) return;
      api.wsURL(id, 'console').then(url => {
        if (closed) return;
        sock = new WebSocket(url);
        ws.current = sock;
        el.current.socket = sock; // the tests cut the connection here
        sock.binaryType = 'arraybuffer';
        let fresh = true;
        sock.onopen = () => { tries = 0; setState('connected'); term.focus(); };
        sock.onmessage = e => {
          if (fresh) { term.reset(); fresh = false; }
          term.write(new Uint8Array(e.data));
        };
        sock.onclose = e => {
          if (closed) return;
          setState('disconnected' + (e.reason ? ': ' + e.reason : '') + '; reconnecting');
          again();
        };
      }, e => {
        if (closed) return;
        setState('disconnected: ' + e.message + '; retrying');
        again();
      });
    };
    connect();
    const sub = term.onData(d => { if (sock && sock.readyState === 1) sock.send(enc.encode(d)); });
    el.current.terminal = term; // the tests read the screen from here
    return () => { closed = true; clearTimeout(timer); sub.dispose(); window.removeEventListener('resize', onResize); sock && sock.close(); term.dispose(); };
  }, [id]);
  async function paste() {
    let text = '';
    try { text = await navigator.clipboard.readText(); } catch { text = prompt('Text to paste') || ''; }
    if (text && ws.current && ws.current.readyState === 1) ws.current.send(new TextEncoder().encode(text));
  }
  return (
    <div class={'console serial' + (full ? ' full' : '')}>
      <div class="console-bar"><Status state={state} /><button onClick={paste}>Paste</button><small>Ctrl+Shift+V pastes too</small></div>
      <div class="term" ref={el} id="serial-term" />
    </div>
  );
}

function Screen({ id, full }) {
  const el = useRef();
  const rfb = useRef(null);
  const [state, setState] = useState('connecting');
  const [layout, setLayout] = useState(localLayout());
  const [typing, setTyping] = useState('');
  const [note, setNote] = useState('');
  useEffect(() => {
    let closed = false;
    api.wsURL(id, 'vnc').then(url => {
      if (closed) return;
      const r = new RFB(el.current, url, { wsProtocols: ['binary'] });
      r.scaleViewport = true;
      r.resizeSession = false;
      r.addEventListener('connect', () => { setState('connected'); r.focus(); });
      r.addEventListener('disconnect', e => setState(e.detail.clean ? 'disconnected' : 'connection lost'));
      rfb.current = r;
    });
    return () => { closed = true; rfb.current && rfb.current.disconnect(); rfb.current = null; };
  }, [id]);
  function type(e) {
    e.preventDefault();
    if (!rfb.current) return;
    const missing = typeInto(rfb.current, typing, layout);
    setNote(missing ? `${missing} character(s) cannot be typed on the ${layoutNames[layout]} layout and were left out.` : 'Typed.');
    setTyping('');
    rfb.current.focus();
  }
  function pickLayout(v) { setLayout(v); try { localStorage.setItem('plinth.layout', v); } catch { /* private mode */ } }
  return (
    <div class={'console vnc' + (full ? ' full' : '')}>
      <div class="console-bar">
        <Status state={state} />
        <button onClick={() => rfb.current && rfb.current.sendCtrlAltDel()}>Ctrl+Alt+Del</button>
        <label>Guest keyboard <select value={layout} onChange={e => pickLayout(e.target.value)}>{Object.entries(layoutNames).map(([k, n]) => <option value={k}>{n}</option>)}</select></label>
        <form onSubmit={type} class="type-text">
          <label>Paste as typing <input value={typing} onInput={e => setTyping(e.target.value)} placeholder="text to type into the VM" /></label>
          <button type="submit">Type</button>
        </form>
        {note && <small role="status">{note}</small>}
      </div>
      <div class="screen" ref={el} id="vnc-screen" />
    </div>
  );
}

function localLayout() {
  try { return localStorage.getItem('plinth.layout') || 'us'; } catch { return 'us'; }
}
