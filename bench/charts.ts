/**
 * Draws the benchmark charts from the raw JSON results, as hand-written SVG (no chart library):
 *
 *   bench/results/reload-time.svg  full reload time against database size (from reload.json)
 *   bench/results/reload-by-size.svg  reload after a one-row commit, WAL and rollback, 10 MiB to 2 GiB (from incremental.json)
 *   bench/results/lookups.svg      point lookups per second (from query.json)
 *
 * Run: npm run bench:charts (after bench:reload and bench:query; a missing input skips its chart).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from './support/env.ts';

const results = path.join(projectRoot, 'bench', 'results');
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

interface Summary {
  median: number;
}

interface ReloadJson {
  machine: { date: string; cpu: string; cores: number; node: string; revision: string };
  sizes: {
    label: string;
    targetBytes: number;
    fileBytes: number;
    readFile: Summary;
    oneRead: Summary;
    dbcacheReload: Summary;
    betterSqlite3Deserialize: Summary;
    dumpPlusReplay: number;
  }[];
}

interface TimingJson {
  id: string;
  runtime: 'node' | 'bun';
  perSecond: number;
  medianNs: number;
}

interface QueryJson {
  machine: { date: string; cpu: string; cores: number; node: string; revision: string };
  bun: { version?: string; skipped?: string };
  database: { bytes: number; rows: number };
  config: { hotKeys: number };
  memo?: { missRate: { random: number } };
  workloads: { random: TimingJson[]; hot: TimingJson[] };
}

function esc(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(content)}</text>`;
}

function document(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="13" role="img" aria-label="${esc(title)}">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** A duration label: 0.5 ms, 12 ms, 1.4 s. */
function duration(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** An axis label for a power of ten (or 2×, 5×) milliseconds: 0.1 ms, 20 ms, 1 s. */
function tick(ms: number): string {
  if (ms >= 1000) return `${ms / 1000} s`;
  return `${Number(ms.toPrecision(1))} ms`;
}

function rate(perSecond: number): string {
  return perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(2)} M/s` : `${(perSecond / 1e3).toFixed(0)} k/s`;
}

/** One line of a log–log chart: a value in milliseconds at each size in MiB. */
interface Series {
  readonly name: string;
  readonly color: string;
  readonly dash: string;
  /** Drawn thicker: the line the chart is about. */
  readonly main?: boolean;
  readonly points: readonly (readonly [mib: number, ms: number])[];
}

interface LogLogChart {
  readonly title: string;
  readonly subtitle: string;
  readonly xLabel: string;
  /** In the legend's order, top to bottom. */
  readonly series: readonly Series[];
}

/** Time against database size, both axes logarithmic, with a value label at every point. */
function logLogChart(chart: LogLogChart): string {
  const width = 800;
  const height = 480;
  const plot = { left: 78, right: width - 236, top: 62, bottom: height - 64 };
  const sizes = chart.series.flatMap((line) => line.points.map(([mib]) => mib));
  const values = chart.series.flatMap((line) => line.points.map(([, ms]) => ms));
  const xMin = Math.floor(Math.log10(Math.min(...sizes)));
  const xMax = Math.ceil(Math.log10(Math.max(...sizes)));
  const yMin = Math.floor(Math.log10(Math.min(...values)));
  const yMax = Math.ceil(Math.log10(Math.max(...values)));
  // Some room left and right of the first and last size, for the value labels.
  const xFrom = xMin - 0.12;
  const xTo = xMax + 0.3;
  const x = (mib: number) => plot.left + ((Math.log10(mib) - xFrom) / (xTo - xFrom)) * (plot.right - plot.left);
  const y = (ms: number) => plot.bottom - ((Math.log10(ms) - yMin) / Math.max(1, yMax - yMin)) * (plot.bottom - plot.top);
  const body: string[] = [];
  body.push(text(plot.left, 26, chart.title, 'font-size="16" font-weight="600" fill="#222"'));
  body.push(text(plot.left, 45, chart.subtitle, 'font-size="12" fill="#555"'));
  // Grid and axes: a line per decade, minor lines at 2× and 5×.
  for (let d = yMin; d <= yMax; d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d;
      if (Math.log10(v) > yMax + 1e-9) continue;
      const yy = y(v);
      body.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="${m === 1 ? '#d0d0d0' : '#eeeeee'}"/>`);
      if (m === 1 || yMax - yMin <= 3) body.push(text(plot.left - 8, yy + 4, tick(v), `text-anchor="end" font-size="${m === 1 ? 12 : 10}" fill="${m === 1 ? '#333' : '#888'}"`));
    }
  }
  for (let d = xMin; d <= xMax; d++) {
    const xx = x(10 ** d);
    body.push(`<line x1="${xx.toFixed(1)}" x2="${xx.toFixed(1)}" y1="${plot.top}" y2="${plot.bottom}" stroke="#d0d0d0"/>`);
    body.push(text(xx, plot.bottom + 20, `${10 ** d} MiB`, 'text-anchor="middle" font-size="12" fill="#333"'));
  }
  body.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#888"/>`);
  body.push(text((plot.left + plot.right) / 2, height - 18, chart.xLabel, 'text-anchor="middle" font-size="12" fill="#333"'));
  body.push(text(18, (plot.top + plot.bottom) / 2, 'time per reload', `text-anchor="middle" font-size="12" fill="#333" transform="rotate(-90 18 ${(plot.top + plot.bottom) / 2})"`));
  for (const line of chart.series) {
    const points = line.points.map(([mib, ms]) => [x(mib), y(ms)] as const);
    body.push(
      `<polyline points="${points.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}" fill="none" stroke="${line.color}" stroke-width="${line.main ? 3.5 : 2}"${line.dash ? ` stroke-dasharray="${line.dash}"` : ''}/>`,
    );
    for (const [a, b] of points) body.push(`<circle cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="4" fill="${line.color}"/>`);
  }
  // Value labels right of the markers, pushed apart where lines meet.
  for (const mib of [...new Set(sizes)]) {
    const labels = chart.series
      .flatMap((line) => line.points.filter(([at]) => at === mib).map(([, ms]) => ({ y: y(ms) + 4, label: duration(ms), color: line.color })))
      .sort((a, b) => a.y - b.y);
    for (let j = 1; j < labels.length; j++) labels[j]!.y = Math.max(labels[j]!.y, labels[j - 1]!.y + 13);
    for (const l of labels) body.push(text(x(mib) + 8, l.y, l.label, `font-size="11" font-weight="600" fill="${l.color}" stroke="#ffffff" stroke-width="3" paint-order="stroke"`));
  }
  // Legend, right of the plot.
  const lx = plot.right + 18;
  chart.series.forEach((line, i) => {
    const ly = plot.top + 14 + i * 44;
    body.push(`<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${line.color}" stroke-width="${line.main ? 3.5 : 2}"${line.dash ? ` stroke-dasharray="${line.dash}"` : ''}/>`);
    let first = '';
    let second = '';
    for (const word of line.name.split(' ')) {
      if (second === '' && `${first} ${word}`.trim().length <= 24) first = `${first} ${word}`.trim();
      else second = `${second} ${word}`.trim();
    }
    body.push(text(lx + 32, ly + 4, first, 'font-size="12" fill="#222"'));
    if (second !== '') body.push(text(lx + 32, ly + 20, second, 'font-size="12" fill="#222"'));
  });
  return document(width, height, chart.title, body);
}

function machineLine(machine: { cpu: string; cores: number; node: string }): string {
  return `${machine.cpu}, ${machine.cores} vCPUs, Node ${machine.node}; lower is better`;
}

function reloadChart(data: ReloadJson): string {
  // Positions on the x axis: the nominal sizes (a "100 MiB" file is a few KiB over 100 MiB).
  const line = (name: string, color: string, dash: string, value: (s: ReloadJson['sizes'][number]) => number, main = false): Series => ({
    name,
    color,
    dash,
    main,
    points: data.sizes.map((s) => [s.targetBytes / 2 ** 20, value(s)] as const),
  });
  return logLogChart({
    title: 'Full reload time against database size (median, log–log)',
    subtitle: machineLine(data.machine),
    xLabel: 'database size (rows with ~1 KB blobs, rollback journal)',
    series: [
      line('SQL dump + replay into sql.js (the old way)', '#d62728', '', (s) => s.dumpPlusReplay),
      line('better-sqlite3: read + deserialize + query', '#ff7f0e', '', (s) => s.betterSqlite3Deserialize.median),
      line('fs.promises.readFile (floor)', '#7f7f7f', '6 4', (s) => s.readFile.median),
      line('dbcache reload', '#1f77b4', '', (s) => s.dbcacheReload.median, true),
    ],
  });
}

interface IncrementalJson {
  wal: { targetBytes: number; reloadMs: number; readMs: number }[];
  rollback: { targetBytes: number; reloadMs: number; readMs: number }[];
}

/** Reload after a one-row commit against size: flat in WAL mode, the file's size in rollback mode. */
function reloadBySizeChart(data: IncrementalJson, machine: ReloadJson['machine']): string {
  const points = (rows: IncrementalJson['wal'], value: (row: IncrementalJson['wal'][number]) => number) => rows.map((row) => [row.targetBytes / 2 ** 20, value(row)] as const);
  return logLogChart({
    title: 'Reload after a one-row commit against database size (median, log–log)',
    subtitle: machineLine(machine),
    xLabel: 'database size (rows with ~1 KB blobs; writer connection open)',
    series: [
      { name: 'rollback journal: dbcache reload', color: '#ff7f0e', dash: '', points: points(data.rollback, (row) => row.reloadMs) },
      { name: 'reading the whole file (floor of a full read)', color: '#7f7f7f', dash: '6 4', points: points(data.wal, (row) => row.readMs) },
      { name: 'WAL: dbcache reload (applies the new frames)', color: '#1f77b4', dash: '', main: true, points: points(data.wal, (row) => row.reloadMs) },
    ],
  });
}

interface Bar {
  id: string;
  runtime: 'node' | 'bun';
  label: string;
  color: string;
}

const BARS: readonly Bar[] = [
  { id: 'dbcache-get', runtime: 'node', label: 'dbcache cache.get', color: '#1f77b4' },
  { id: 'dbcache-memo', runtime: 'node', label: 'dbcache + memo', color: '#0b3d6b' },
  { id: 'better-file', runtime: 'node', label: 'better-sqlite3, file', color: '#ffbb78' },
  { id: 'better-memory', runtime: 'node', label: 'better-sqlite3, in-memory', color: '#ff7f0e' },
  { id: 'bun-dbcache-get', runtime: 'bun', label: 'dbcache cache.get', color: '#1f77b4' },
  { id: 'bun-dbcache-memo', runtime: 'bun', label: 'dbcache + memo', color: '#0b3d6b' },
  { id: 'bun-sqlite-file', runtime: 'bun', label: 'bun:sqlite, file', color: '#98df8a' },
  { id: 'bun-sqlite-memory', runtime: 'bun', label: 'bun:sqlite, in-memory', color: '#2ca02c' },
];

function lookupsChart(data: QueryJson): string {
  const panels = [
    { title: `Uniformly random keys (${data.database.rows.toLocaleString('en-US')} rows, ${(data.database.bytes / 2 ** 20).toFixed(0)} MiB)`, timings: data.workloads.random },
    { title: `${data.config.hotKeys.toLocaleString('en-US')} hot keys, cycled (memo hits)`, timings: data.workloads.hot },
  ].map((panel) => ({
    ...panel,
    bars: BARS.flatMap((bar) => {
      const t = panel.timings.find((timing) => timing.id === bar.id && timing.runtime === bar.runtime);
      if (t === undefined) return [];
      // On random keys (more distinct keys per round than memo entries) most memo lookups miss.
      const misses = data.memo === undefined ? 'misses' : `${(data.memo.missRate.random * 100).toFixed(0)}% misses`;
      const label = bar.id.endsWith('memo') && panel.timings === data.workloads.random ? `${bar.label}, ${misses}` : bar.label;
      return [{ ...bar, label, perSecond: t.perSecond }];
    }),
  }));
  const width = 800;
  const barHeight = 20;
  const gap = 6;
  const runtimeGap = 10;
  const labelWidth = 250;
  const left = 24 + labelWidth;
  const right = width - 110;
  const maxRate = Math.max(...panels.flatMap((p) => p.bars.map((b) => b.perSecond)));
  // Grid steps of 1, 2 or 5 × a power of ten, four to eight of them up to a round top.
  const magnitude = 10 ** Math.floor(Math.log10(maxRate));
  const step = [0.1, 0.2, 0.5, 1, 2].map((m) => m * magnitude).find((v) => maxRate / v <= 8)!;
  const top = Math.ceil(maxRate / step) * step;
  const x = (v: number) => left + (v / top) * (right - left);
  const body: string[] = [];
  let y = 28;
  body.push(text(24, y, 'Point lookups per second, rows as objects (median; higher is better)', 'font-size="16" font-weight="600" fill="#222"'));
  y += 19;
  body.push(
    text(
      24,
      y,
      `${data.machine.cpu}, ${data.machine.cores} vCPUs; Node ${data.machine.node}${data.bun.version ? `, Bun ${data.bun.version}` : ''}; one process per runtime, same keys`,
      'font-size="12" fill="#555"',
    ),
  );
  y += 22;
  for (const panel of panels) {
    body.push(text(24, y + 8, panel.title, 'font-size="13" font-weight="600" fill="#222"'));
    y += 20;
    const panelTop = y;
    let previous: 'node' | 'bun' | undefined;
    const rows: string[] = [];
    for (const bar of panel.bars) {
      if (previous !== undefined && previous !== bar.runtime) y += runtimeGap;
      previous = bar.runtime;
      const runtime = bar.runtime === 'node' ? 'Node' : 'Bun';
      rows.push(text(left - 10, y + barHeight / 2 + 4, `${bar.label} (${runtime})`, 'text-anchor="end" font-size="12" fill="#222"'));
      rows.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(bar.perSecond) - left).toFixed(1)}" height="${barHeight}" fill="${bar.color}"/>`);
      rows.push(text(x(bar.perSecond) + 6, y + barHeight / 2 + 4, rate(bar.perSecond), 'font-size="12" fill="#222"'));
      y += barHeight + gap;
    }
    const panelBottom = y - gap + 4;
    for (let v = 0; v <= top + 1e-9; v += step) {
      const xx = x(v);
      body.push(`<line x1="${xx.toFixed(1)}" x2="${xx.toFixed(1)}" y1="${panelTop - 4}" y2="${panelBottom}" stroke="${v === 0 ? '#888' : '#e3e3e3'}"/>`);
    }
    body.push(...rows);
    y = panelBottom + 26;
  }
  // The axis labels under the last panel.
  for (let v = 0; v <= top + 1e-9; v += step) {
    const label = v === 0 ? '0' : v >= 1e6 ? `${Number((v / 1e6).toPrecision(3))} M` : `${Number((v / 1e3).toPrecision(3))} k`;
    body.push(text(x(v), y - 10, label, 'text-anchor="middle" font-size="11" fill="#555"'));
  }
  body.push(text((left + right) / 2, y + 8, 'lookups per second (one thread)', 'text-anchor="middle" font-size="12" fill="#333"'));
  y += 24;
  // Legend: what the colours mean.
  const shown = new Set(panels.flatMap((p) => p.bars.map((b) => b.id)));
  const legend = [
    ['#1f77b4', 'dbcache (sql.js)', 'dbcache-get'],
    ['#0b3d6b', 'dbcache, memo: true', 'dbcache-memo'],
    ['#ff7f0e', 'better-sqlite3 (native)', 'better-memory'],
    ['#2ca02c', 'bun:sqlite (native)', 'bun-sqlite-memory'],
  ].filter(([, , id]) => shown.has(id!));
  let lx = 24;
  for (const [color, name] of legend as [string, string, string][]) {
    body.push(`<rect x="${lx}" y="${y - 10}" width="14" height="14" fill="${color}"/>`);
    body.push(text(lx + 20, y + 1, name, 'font-size="12" fill="#222"'));
    lx += 40 + name.length * 7;
  }
  body.push(text(24, y + 22, 'Lighter shade: on the file (readonly); darker: an in-memory copy of it.', 'font-size="11" fill="#555"'));
  return document(width, y + 36, 'Point lookups per second', body);
}

function readJson<T>(name: string): T | undefined {
  const file = path.join(results, name);
  if (!fs.existsSync(file)) {
    console.error(`${path.relative(process.cwd(), file)} is missing: run the benchmark that writes it first; its chart is skipped`);
    return undefined;
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

function write(name: string, svg: string): void {
  const file = path.join(results, name);
  fs.writeFileSync(file, svg);
  console.error(`wrote ${path.relative(process.cwd(), file)}`);
}

const reload = readJson<ReloadJson>('reload.json');
if (reload !== undefined) write('reload-time.svg', reloadChart(reload));
const incremental = readJson<IncrementalJson>('incremental.json');
if (incremental !== undefined && reload !== undefined) write('reload-by-size.svg', reloadBySizeChart(incremental, reload.machine));
const query = readJson<QueryJson>('query.json');
if (query !== undefined) write('lookups.svg', lookupsChart(query));
