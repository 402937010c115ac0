// CPU, memory, network and disk charts of the host, from the history
// mgmtd keeps (GET /api/v1/host/history: the last hour at 20 s, the last
// day at 5 min), drawn with uPlot and refreshed every 20 s.
import { useState, useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import * as api from './api.js';
import { bytes } from './ui.jsx';

const charts = [
  { id: 'cpu', title: 'CPU busy (%)', series: [['cpu_percent', 'busy %', '#2563eb']], fmt: v => v == null ? '' : v.toFixed(0) + '%' },
  { id: 'memory', title: 'Memory used', series: [['memory_used_bytes', 'used', '#7c3aed']], fmt: v => bytes(v) },
  { id: 'network', title: 'VM network (per second)', series: [['net_rx_bytes_per_second', 'received', '#059669'], ['net_tx_bytes_per_second', 'sent', '#d97706']], fmt: v => bytes(v) + '/s' },
  { id: 'disk', title: 'VM disks (per second)', series: [['disk_read_bytes_per_second', 'read', '#0891b2'], ['disk_write_bytes_per_second', 'written', '#dc2626']], fmt: v => bytes(v) + '/s' },
];

export function Charts() {
  const [range, setRange] = useState('hour');
  const [hist, setHist] = useState(null);
  const [err, setErr] = useState('');
  useEffect(() => {
    let alive = true;
    const load = () => api.get('/api/v1/host/history?range=' + range).then(h => alive && setHist(h), e => alive && setErr(e.message));
    load();
    const t = setInterval(load, 20000);
    return () => { alive = false; clearInterval(t); };
  }, [range]);
  return (
    <section aria-labelledby="charts-h" class="charts">
      <div class="toolbar"><h2 id="charts-h">Performance</h2>
        <div role="group" aria-label="Time range">
          <button aria-pressed={range === 'hour'} onClick={() => setRange('hour')}>Last hour (20 s)</button>
          <button aria-pressed={range === 'day'} onClick={() => setRange('day')}>Last day (5 min)</button>
        </div></div>
      {err && <p class="error" role="alert">{err}</p>}
      {hist && (hist.samples || []).length === 0 && <p class="notice">No samples yet: mgmtd takes one every {hist.step_seconds} s.</p>}
      {hist && (hist.samples || []).length > 0 && <div class="chart-grid">{charts.map(c => <Chart key={c.id + range} def={c} hist={hist} />)}</div>}
    </section>
  );
}

function Chart({ def, hist }) {
  const el = useRef();
  const plot = useRef(null);
  const data = () => {
    const s = hist.samples || [];
    return [s.map(x => Date.parse(x.time) / 1000), ...def.series.map(([k]) => s.map(x => x[k] ?? null))];
  };
  useEffect(() => {
    const width = Math.max(260, Math.min(560, el.current.clientWidth || 400));
    plot.current = new uPlot({
      width, height: 160, legend: { show: true },
      scales: { y: { range: (u, min, max) => [0, Math.max(max || 1, def.id === 'cpu' ? 100 : 1)] } },
      axes: [{}, { values: (u, vals) => vals.map(def.fmt), size: 70 }],
      series: [{}, ...def.series.map(([, label, stroke]) => ({ label, stroke, width: 1.5, value: (u, v) => def.fmt(v) }))],
    }, data(), el.current);
    return () => plot.current.destroy();
  }, []);
  useEffect(() => { plot.current && plot.current.setData(data()); }, [hist]);
  const last = (hist.samples || []).at(-1);
  return (
    <figure class="chart" id={'chart-' + def.id}>
      <figcaption>{def.title}{last ? ': ' + def.series.map(([k, l]) => l + ' ' + def.fmt(last[k])).join(', ') : ''}</figcaption>
      <div ref={el} aria-hidden="true" />
    </figure>
  );
}
