/**
 * The report's HTML: one self-contained file (inline CSS, PNGs as data: URIs, charts as inline
 * SVG, no script, no external URL) with a plain-language privacy section first and the
 * engineering detail after it. Every section renders "not available" rather than failing.
 */
import { basename } from 'node:path';
import { lineChart, metricSeries, rocChart } from './charts.js';
import { describeRelation } from '../privacy/index.js';
import { looksLikePlainHash, type FingerprintShown, type PrivacySummary } from './privacy-summary.js';
import type { Json, JsonObject, MetricRow, RunFolder } from './run-folder.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
const h = escapeHtml;

export function formatNumber(x: number | undefined, digits = 4): string {
  if (x === undefined || Number.isNaN(x)) return '—';
  if (x === Infinity) return '∞';
  if (x === -Infinity) return '−∞';
  if (Number.isInteger(x) && Math.abs(x) < 1e9) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return String(+x.toPrecision(digits));
}

const NA = (what: string): string => `<p class="na">${h(what)}</p>`;
/** A file that exists but could not be read: never "not available". */
const DAMAGED = (file: string, why: string): string => `<p class="bad"><strong>Damaged:</strong> <code>${h(file)}</code> exists but could not be read (${h(why)}); see Problems below.</p>`;

/**
 * The method's plain-words description comes from the run manifest (written by the runner, which
 * takes it from the method's registry entry); the report knows no method names of its own.
 */
function describeMethod(run: RunFolder): string | undefined {
  const d = run.manifest?.description;
  return typeof d === 'string' && d.trim() ? d : undefined;
}

/** The dataset's name: run.json, else wherever an older runner put it (flat `data`, train's `config.data` / `dataset.name`). */
function datasetName(run: RunFolder): string | undefined {
  if (run.manifest?.dataset?.name) return run.manifest.dataset.name;
  const config = run.config;
  const c = config?.config as JsonObject | undefined;
  const d = config?.dataset as JsonObject | string | undefined;
  for (const v of [config?.data, typeof d === 'object' && d ? d.name : d, c && typeof c === 'object' ? c.data : undefined]) if (typeof v === 'string' && v) return v;
  return undefined;
}

/** The run's method: run.json, else config.method, else the ledger's method names, else the run kind. */
function methodName(run: RunFolder, p?: PrivacySummary): string | undefined {
  if (run.manifest?.method) return run.manifest.method;
  const m = run.config?.method;
  if (typeof m === 'string' && m) return m;
  if (p?.methods.length) return p.methods.join(', ');
  const k = run.config?.kind;
  return typeof k === 'string' ? k : undefined;
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** A recorded argv as a shell line; run.json records argv after the program name. */
function argvLine(argv: readonly string[]): string {
  return (argv[0] === 'dplens' ? argv : ['dplens', ...argv]).map(quoteArg).join(' ');
}

function commandString(config: JsonObject | undefined): string | undefined {
  // Prefer a full argv when the run recorded one; `command` may be a full line or argv array.
  const argv = config?.argv ?? config?.commandLine;
  if (Array.isArray(argv) && argv.length && argv.every((x) => typeof x === 'string')) return (argv as string[]).map(quoteArg).join(' ');
  if (typeof argv === 'string' && argv.trim()) return argv;
  const c = config?.command;
  if (typeof c === 'string' && c.trim()) return c;
  if (Array.isArray(c) && c.every((x) => typeof x === 'string')) return (c as string[]).map(quoteArg).join(' ');
  return undefined;
}

function jsonInline(v: Json | undefined): string {
  if (v === undefined) return '—';
  if (typeof v === 'number') return formatNumber(v, 6);
  if (typeof v === 'string') return v;
  const s = JSON.stringify(v);
  return s.length > 200 ? s.slice(0, 197) + '…' : s;
}

/** Flattens nested objects to dotted keys (arrays kept whole). */
export function flatten(o: JsonObject, prefix = '', out: [string, Json][] = []): [string, Json][] {
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else out.push([key, v]);
  }
  return out;
}

function table(head: string[], rows: string[][], cls = ''): string {
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((c) => `<th>${c}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function kv(rows: [string, string][]): string {
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join('')}</tbody></table>`;
}

function figure(svg: string, caption: string): string {
  return `<figure class="chart">${svg}<figcaption>${h(caption)}</figcaption></figure>`;
}

// ---------------------------------------------------------------- sections

function fingerprintHtml(f: FingerprintShown): string {
  if (f.kind === 'keyed') return `<code class="fp">${h(f.value ?? '')}</code> <span class="muted">(keyed; only the data owner can recompute it — ${h(f.where)})</span>`;
  if (f.kind === 'plain')
    return `<span class="bad">plain hash (released: allows membership tests)</span> <span class="muted">in ${h(f.where)}${f.note ? ` (${h(f.note)})` : ''}; the value is not repeated here. Anyone who holds a candidate data set can hash it and compare — do not publish that file.</span>`;
  return `<code class="fp">${h(f.value ?? '')}</code> <span class="muted">(kind not recorded — ${h(f.where)})</span>`;
}

function list(items: string[]): string {
  return `<ul>${items.map((i) => `<li>${i}</li>`).join('')}</ul>`;
}

/** What the proof treats as public, what the folder releases outside the guarantee, and what is private. */
function releaseHtml(p: PrivacySummary): string {
  const old = 'not recorded: this run folder has no run.json (written before dplens recorded what a run releases)';
  const pub = p.treatedAsPublic.length ? list(p.treatedAsPublic.map((x) => h(x))) : NA(p.manifestKnown ? 'Nothing is treated as public beyond the method’s configuration.' : `Not available: ${old}.`);
  const outside = p.releasedOutside.length
    ? `<p class="warn">These are in the run folder but <strong>not covered</strong> by the guarantee above:</p>${list(
        p.releasedOutside.map((r) => `${h(r.what)} <span class="muted">— in ${r.where.map((w) => `<code>${h(w)}</code>`).join(', ')}${r.why ? `; ${h(r.why)}` : ''}</span>`),
      )}`
    : NA(p.manifestKnown ? 'Nothing: every released file is covered by the guarantee or public.' : `Not available: ${old}; config.json and metrics.jsonl of such folders may hold facts about the data that ε does not cover.`);
  const priv = p.privateFiles.length
    ? `<h3>Private files — do not publish</h3><p class="bad"><strong>Do not publish ${p.privateFiles.map((f) => `<code>${h(f)}</code>`).join(', ')}.</strong> ${
        p.privateFiles.length === 1 ? 'It holds' : 'They hold'
      } private diagnostics (e.g. training-batch loss and accuracy, data-dependent timings) computed on the private data without noise; this report never shows ${p.privateFiles.length === 1 ? 'its' : 'their'} content. Remove ${p.privateFiles.length === 1 ? 'it' : 'them'} before sharing the folder.</p>`
    : '';
  return `<h3>Treated as public by the proof</h3>${pub}<h3>Released outside the guarantee</h3>${outside}${priv}`;
}

function attemptsHtml(p: PrivacySummary): string {
  if (p.attempts.length <= 1) return '';
  return `<h3>Attempts</h3><p class="warn">This run was resumed: it ran in ${p.attempts.length} attempts (${h(p.attemptsSource ?? '')}). The ledger covers all of them; ε above is their total.</p>${table(
    ['attempt', 'started', 'resumed from step', 'ledger entries at start', 'ended by'],
    p.attempts.map((a, i) => [
      String(i + 1),
      h(a.startedAt ?? '—'),
      a.resumedFromStep === undefined ? (i === 0 ? 'start' : '—') : formatNumber(a.resumedFromStep),
      formatNumber(a.ledgerEntriesAtStart),
      h(a.stoppedBy ?? '—'),
    ]),
    'num',
  )}`;
}

function linkedHtml(p: PrivacySummary): string {
  if (!p.linked.length) return '';
  const total =
    p.totalEpsilon !== undefined
      ? `<p>Total spent on this private data (this run plus linked ledgers, basic composition): <strong>ε = ${formatNumber(p.totalEpsilon)}</strong>, δ = ${formatNumber(p.totalDelta)}.</p>`
      : `<p class="bad">The total spent on this private data cannot be computed: a linked ledger could not be priced.</p>`;
  return `<h3>Linked ledgers (other spending on the same private data)</h3>${table(
    ['ledger', 'purpose', 'integrity', 'entries', 'ε'],
    p.linked.map((l) => [
      `<code>${h(l.name)}</code>`,
      h(l.purpose),
      `<span class="${l.integrity.status === 'verified' ? 'ok' : 'bad'}">${h(l.integrity.status)}</span> <span class="muted">— ${h(l.integrity.detail)}</span>`,
      formatNumber(l.entryCount),
      `${formatNumber(l.epsilon)}${l.epsilonSource ? ` <span class="muted">(${h(l.epsilonSource)})</span>` : ''}`,
    ]),
  )}${total}`;
}

function privacySection(run: RunFolder, p: PrivacySummary): string {
  if (!run.ledgerPath && !run.ledgerMissing) {
    return `<section id="privacy"><h2>1. What was protected and how</h2>${NA(
      'Not available: this run folder has no ledger.jsonl, so no privacy claim can be made for it.',
    )}${run.manifest ? releaseHtml(p) : p.privateFiles.length ? releaseHtml(p) : ''}</section>`;
  }
  const eps = p.epsilon;
  const delta = p.delta;
  const dataset = datasetName(run);
  const relationText = p.relation ? describeRelation(p.relation) : 'the neighbouring relation of the method’s proof (not recorded in this run folder)';
  const statement = `(ε = ${formatNumber(eps)}, δ = ${formatNumber(delta)})-differential privacy with respect to ${h(relationText)}${dataset ? ` (<code>${h(dataset)}</code>)` : ''}`;
  const guarantee = !p.established
    ? `<strong>NOT established:</strong> ${h(p.notEstablished.join('; ') || `ledger integrity ${p.integrity.status}`)}. This report does not state a privacy guarantee for the run; the figures below are what the files claim${
        eps !== undefined ? ` (they would read as ${statement})` : ''
      } and must not be relied on.`
    : eps === undefined
      ? 'The privacy loss could not be computed (see the notes below).'
      : p.metricDp && !p.nonPrivate
        ? `<strong>Metric differential privacy</strong> (εd-privacy, ${h(p.metricDp.metric)} metric) with ε = ${formatNumber(p.metricDp.epsilon)} per radian, with respect to ${h(relationText)}${dataset ? ` (<code>${h(dataset)}</code>)` : ''}: changing one record changes the probability of any outcome by a factor of at most e<sup>ε·θ</sup>, θ being the largest angle between the two records' clipped gradient directions (at worst θ = π). This is <strong>not</strong> an (ε, δ)-DP guarantee and dplens does not convert it into one; compare it with (ε, δ) runs through the empirical audit figures only.`
      : eps === Infinity || p.nonPrivate
        ? 'This run made a <strong>non-private</strong> release: it offers no differential-privacy guarantee (ε = ∞).'
        : `${statement}. Informally: changing the training data in this way changes the probability of any outcome of this run by a factor of at most e<sup>ε</sup> ≈ ${formatNumber(
            Math.exp(eps),
            3,
          )}, except with probability δ.${p.totalEpsilon !== undefined ? ` Together with the linked ledgers below, ε = ${formatNumber(p.totalEpsilon)} has been spent on this data.` : ''}`;
  const methodText = describeMethod(run);
  const mech = p.mechanisms.length
    ? table(
        ['mechanism', 'applications', 'parameters'],
        p.mechanisms.map((m) => [`<code>${h(m.kind)}</code>`, formatNumber(m.count), h(m.params || '—')]),
      )
    : NA('No mechanism entries in the ledger.');
  const budget =
    p.budgetEpsilon !== undefined && eps !== undefined
      ? `${formatNumber(p.budgetEpsilon)} (${eps <= p.budgetEpsilon + 1e-9 ? `${formatNumber((100 * eps) / p.budgetEpsilon, 3)} % used` : '<strong class="bad">exceeded</strong>'})`
      : p.budgetEpsilon !== undefined
        ? formatNumber(p.budgetEpsilon)
        : '—';
  const integrityClass = p.integrity.status === 'verified' ? 'ok' : p.integrity.status === 'failed' ? 'bad' : 'warn';
  const randClass = p.randomness.kind === 'secure' ? 'ok' : p.randomness.kind === 'seeded' ? 'warn' : '';
  const randText =
    p.randomness.kind === 'secure'
      ? 'cryptographically secure (node:crypto) — required for the guarantee to hold in deployment'
      : p.randomness.kind === 'seeded'
        ? `seeded${p.randomness.seed !== undefined ? ` (seed ${h(String(p.randomness.seed))})` : ''} — reproducible for research, but the noise is predictable from the seed: do not publish results of a seeded run as private`
        : 'not recorded';
  return `<section id="privacy"><h2>1. What was protected and how</h2>
<p class="guarantee${p.established ? '' : ' not-established'}">${guarantee}</p>
${methodText ? `<p>${h(methodText)}</p>` : ''}
${kv([
  ['ε spent', `<strong>${formatNumber(eps)}</strong>${p.epsilonSource ? ` <span class="muted">(${h(p.epsilonSource)})</span>` : ''}${p.epsilonNote ? `<br><span class="warn">${h(p.epsilonNote)}</span>` : ''}`],
  ['δ', formatNumber(delta)],
  ['ε budget', budget],
  ...(p.totalEpsilon !== undefined || p.linked.length ? ([['ε spent on this data in total', p.totalEpsilon !== undefined ? `<strong>${formatNumber(p.totalEpsilon)}</strong> at δ = ${formatNumber(p.totalDelta)} <span class="muted">(this run + ${p.linked.length} linked ledger${p.linked.length === 1 ? '' : 's'})</span>` : '<span class="bad">cannot be computed</span>']] as [string, string][]) : []),
  ['neighbouring relation', `${p.relation ? `<code>${h(p.relation)}</code>: ${h(describeRelation(p.relation))}` : '<span class="warn">not recorded</span>'} <span class="muted">(${h(p.relationSource)})</span>`],
  // A metric-DP run is never converted to (ε, δ): its ε is the composed metric-DP tally (issue 16).
  ['accountant', p.metricDp ? h(`metric DP (${p.metricDp.metric}): per-release ε added up, never converted to (ε, δ)`) : p.accountant ? h(p.accountant === 'rdp' ? 'rdp (Rényi DP, converted to (ε, δ))' : p.accountant === 'pld' ? 'pld (privacy loss distributions)' : p.accountant) : '—'],
  ['method(s)', p.methods.length ? p.methods.map((m) => `<code>${h(m)}</code>`).join(', ') : '—'],
  ['dataset fingerprint', p.fingerprints.length ? p.fingerprints.map(fingerprintHtml).join('<br>') : '—'],
  ['randomness', `<span class="${randClass}">${randText}</span> <span class="muted">(${h(p.randomness.detail)})</span>`],
  ['ledger integrity', `<span class="${integrityClass}">${h(p.integrity.status)}</span> <span class="muted">— ${h(p.integrity.detail)}</span>`],
  ['ledger entries', `${formatNumber(p.entryCount)} in <code>${h(basename(run.ledgerPath ?? run.ledgerName))}</code>`],
])}
${linkedHtml(p)}
${attemptsHtml(p)}
${releaseHtml(p)}
<h3>Mechanisms recorded in the ledger</h3>
${mech}
</section>`;
}

function samplesSection(run: RunFolder): string {
  const s = run.samples;
  const body = s
    ? (() => {
        // Small sample grids (28×28 digits) are scaled up without smoothing so pixels stay visible.
        const scale = Math.max(1, Math.min(4, Math.floor(720 / s.width), Math.floor(560 / s.height)));
        // The runner's own words for the grid when it says them (an attack's grid is not one row per class).
        const what = run.manifest?.artifacts?.find((a) => a.path === s.name)?.what ?? 'one row per class';
        return `<figure class="samples"><img alt="sample grid: ${h(what)}" src="data:image/png;base64,${s.bytes.toString('base64')}" width="${s.width * scale}" height="${s.height * scale}"><figcaption>${h(s.name)} — ${s.width}×${s.height} px, ${h(what)}.</figcaption></figure>`;
      })()
    : run.damaged['samples.png']
      ? DAMAGED('samples.png', run.damaged['samples.png'])
      : NA('Not available: no samples.png in this run folder.');
  return `<section id="samples"><h2>2. Samples</h2>${body}</section>`;
}

/**
 * Metric columns the report never shows: figures on private training batches (loss, accuracy,
 * the realised Poisson batch size) and data-dependent timings (voteMs, ...). Current runners write
 * them to private-diagnostics.jsonl; older run folders hold them in metrics.jsonl.
 */
export function isPrivateMetric(key: string): boolean {
  return /^(loss|accuracy|train_?loss|train_?accuracy|batch_?(loss|accuracy|size)|batchSize)$/i.test(key) || /(Ms|Seconds|Secs)$/.test(key) || /^(seconds|elapsed|time)$/i.test(key);
}

/** Metric keys grouped into the report's charts (private columns excluded). */
function groupMetricKeys(metrics: readonly MetricRow[]): { loss: string[]; acc: string[]; eps: string[]; other: string[] } {
  const keys = new Set<string>();
  for (const r of metrics) for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && Number.isFinite(v) && k !== 'step' && !isPrivateMetric(k)) keys.add(k);
  const loss: string[] = [];
  const acc: string[] = [];
  const eps: string[] = [];
  const other: string[] = [];
  for (const k of keys) {
    // Bookkeeping columns (time, epoch, phase timings in ms) are not quality curves.
    if (/^(epoch|time|elapsed|seconds|wall|lr|learningRate|batchSize)/i.test(k) || /(Ms|Seconds|Secs)$/.test(k)) continue;
    if (/^eps(ilon)?$/i.test(k) || /epsilon/i.test(k)) eps.push(k);
    else if (/loss/i.test(k)) loss.push(k);
    else if (/acc/i.test(k)) acc.push(k);
    else other.push(k);
  }
  return { loss, acc, eps, other };
}

async function curvesSection(run: RunFolder): Promise<string> {
  const m = run.metrics;
  if (m.length === 0) {
    const file = run.metricsFile ?? run.manifest?.metrics ?? 'metrics.jsonl';
    const body = run.damaged[file] ? DAMAGED(file, run.damaged[file]) : run.metricsFile ? NA(`${file} holds no metric rows yet.`) : NA(`Not available: no ${file} in this run folder.`);
    return `<section id="curves"><h2>3. Training curves</h2>${body}</section>`;
  }
  const withheld = [...new Set(m.flatMap((r) => Object.keys(r).filter(isPrivateMetric)))].sort();
  const g = groupMetricKeys(m);
  const parts: string[] = [];
  if (g.loss.length) parts.push(figure(await lineChart(metricSeries(m, g.loss), { xTitle: 'step', yTitle: 'loss' }), 'Loss vs step.'));
  if (g.acc.length) parts.push(figure(await lineChart(metricSeries(m, g.acc), { xTitle: 'step', yTitle: 'accuracy' }), 'Accuracy vs step.'));
  if (g.eps.length)
    parts.push(figure(await lineChart(metricSeries(m, g.eps), { xTitle: 'step', yTitle: 'ε spent', yZero: true }), 'Privacy loss ε spent so far vs step (at the run’s δ).'));
  else parts.push(NA('ε vs step: not available (metrics.jsonl has no epsilon column).'));
  if (g.other.length) parts.push(figure(await lineChart(metricSeries(m, g.other), { xTitle: 'step', yTitle: 'value' }), `Other metrics: ${g.other.join(', ')}.`));
  const last = m[m.length - 1]!;
  const lastRow = Object.entries(last)
    .filter(([k, v]) => v !== undefined && v !== null && !isPrivateMetric(k))
    .map(([k, v]) => `<code>${h(k)}</code> ${h(typeof v === 'number' ? formatNumber(v) : String(v))}`)
    .join(' · ');
  const withheldNote = withheld.length
    ? `<p class="warn">Not shown: ${withheld.map((k) => `<code>${h(k)}</code>`).join(', ')} — figures on private training batches and data-dependent timings are private diagnostics, not covered by ε${
        run.metricsFile ? ` (this older folder keeps them in <code>${h(run.metricsFile)}</code>: do not publish it as it is)` : ''
      }.</p>`
    : '';
  return `<section id="curves"><h2>3. Training curves</h2><p class="muted">${formatNumber(m.length)} metric rows; last: ${lastRow}</p>${withheldNote}<div class="charts">${parts.join('\n')}</div></section>`;
}

const REFERENCE_KEY = /^(reference|nonPrivate|non_private|nonprivate|baseline|real|realData|real_data)$/i;

/**
 * Utility table: the run's own figures against a non-private reference. eval.json objects keyed
 * like {synthetic: {...}, reference: {...}} become columns; flat eval.json becomes one column.
 */
function utilitySection(run: RunFolder): string {
  const columns: { name: string; values: Map<string, Json> }[] = [];
  const ev = run.evaluation;
  if (ev) {
    const objectKeys = Object.entries(ev).filter(([, v]) => v && typeof v === 'object' && !Array.isArray(v));
    const scalars = Object.entries(ev).filter(([, v]) => typeof v === 'number');
    if (scalars.length) columns.push({ name: 'this run (eval.json)', values: new Map(scalars) });
    for (const [k, v] of objectKeys) {
      const flat = flatten(v as JsonObject).filter(([, x]) => typeof x === 'number' || typeof x === 'string');
      if (flat.length) columns.push({ name: REFERENCE_KEY.test(k) ? `${k} (non-private reference)` : k, values: new Map(flat) });
    }
  }
  const last = [...run.metrics].reverse();
  const finals = new Map<string, Json>();
  // Test-set figures only: training-batch loss/accuracy are private diagnostics (not covered by ε).
  const finalKeys: [string, string][] = [
    ['testAccuracy', 'testAccuracy'],
    ['testLoss', 'testLoss'],
  ];
  for (const [key, label] of finalKeys) {
    const row = last.find((r) => typeof r[key] === 'number');
    if (row) finals.set(label, row[key] as number);
  }
  if (finals.size) columns.unshift({ name: 'this run, final (metrics.jsonl)', values: finals });
  const ref = run.config?.reference;
  if (ref && typeof ref === 'object' && !Array.isArray(ref)) columns.push({ name: 'non-private reference (config.json)', values: new Map(flatten(ref)) });
  const evalDamaged = run.damaged['eval.json'] ? DAMAGED('eval.json', run.damaged['eval.json']) : '';
  if (!columns.length) return `<section id="utility"><h2>4. Utility</h2>${evalDamaged || NA('Not available: no eval.json and no test accuracy in metrics.jsonl.')}</section>`;
  const rows = [...new Set(columns.flatMap((c) => [...c.values.keys()]))];
  const hasRef = columns.some((c) => /reference/.test(c.name));
  return `<section id="utility"><h2>4. Utility</h2>${evalDamaged}${table(
    ['metric', ...columns.map((c) => h(c.name))],
    rows.map((r) => [`<code>${h(r)}</code>`, ...columns.map((c) => (c.values.has(r) ? h(jsonInline(c.values.get(r))) : '—'))]),
    'num',
  )}${typeof ev?.protocol === 'string' ? `<p class="muted">Protocol: ${h(ev.protocol)}${typeof ev.protocolDescription === 'string' ? ` — ${h(ev.protocolDescription)}` : ''}</p>` : ''}${evalExtras(ev)}${hasRef ? '' : '<p class="na">No non-private reference is recorded for this run.</p>'}</section>`;
}

/** eval.json extras (dplens eval): per-classifier accuracies, per-class counts, what fid/precision/recall compare. */
function evalExtras(ev: JsonObject | undefined): string {
  if (!ev) return '';
  const parts: string[] = [];
  if (Array.isArray(ev.classifiers)) {
    const rows = ev.classifiers.filter((c): c is JsonObject => !!c && typeof c === 'object' && !Array.isArray(c));
    if (rows.length) parts.push(`<p class="muted">Classifiers: ${rows.map((c) => `<code>${h(String(c.name))}</code> ${h(jsonInline(c.testAccuracy))} (epoch ${h(jsonInline(c.selectedEpoch))} selected on synthetic validation)`).join(' · ')}</p>`);
  }
  if (Array.isArray(ev.classCounts)) parts.push(`<p class="muted">Synthetic samples per class: ${ev.classCounts.map((n, i) => `${i}: ${h(jsonInline(n))}`).join(' · ')}</p>`);
  if (typeof ev.fidelityDescription === 'string') parts.push(`<p class="warn">fid / precision / recall: ${h(ev.fidelityDescription)}</p>`);
  return parts.join('');
}

async function auditSection(run: RunFolder): Promise<string> {
  const a = run.audit;
  if (!a)
    return `<section id="audit"><h2>5. Privacy audit</h2>${
      run.damaged['audit.json'] ? DAMAGED('audit.json', run.damaged['audit.json']) : NA('Not available: no audit.json in this run folder (run an audit to measure an empirical lower bound on ε).')
    }</section>`;
  // null claimed ε = an explicitly non-private run (ε = ∞): the audit then calibrates the attack.
  const claimed = typeof a.claimedEpsilon === 'number' ? a.claimedEpsilon : a.claimedEpsilon === null ? Infinity : undefined;
  const lower = typeof a.empiricalEpsilonLowerBound === 'number' ? a.empiricalEpsilonLowerBound : undefined;
  let verdict = '';
  if (claimed !== undefined && lower !== undefined) {
    verdict =
      lower <= claimed + 1e-9
        ? claimed === Infinity
          ? `<p class="warn">The run is non-private (claimed ε = ∞); the empirical lower bound ${formatNumber(lower)} shows how much the attack can detect without any protection.</p>`
          : `<p class="ok">Consistent: the empirical lower bound ${formatNumber(lower)} does not exceed the claimed ε = ${formatNumber(claimed)}.</p>`
        : `<p class="bad"><strong>Violation:</strong> the empirical lower bound ${formatNumber(lower)} exceeds the claimed ε = ${formatNumber(claimed)} — the implementation leaks more than its accounting says.</p>`;
  }
  const extra = Object.entries(a).filter(
    ([k, v]) => !['claimedEpsilon', 'empiricalEpsilonLowerBound', 'confidence', 'attack', 'auc', 'roc'].includes(k) && (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean'),
  );
  const rows: [string, string][] = [
    ['attack', h(String(a.attack ?? '—'))],
    ['claimed ε', formatNumber(claimed)],
    ['empirical ε lower bound', formatNumber(lower) + (typeof a.confidence === 'number' ? ` <span class="muted">(at ${formatNumber(a.confidence * (a.confidence <= 1 ? 100 : 1))} % confidence)</span>` : '')],
    ['AUC', formatNumber(typeof a.auc === 'number' ? a.auc : undefined)],
    ...extra.map(([k, v]): [string, string] => [h(k), h(typeof v === 'number' ? formatNumber(v) : String(v))]),
  ];
  const roc = a.roc && a.roc.fpr.length > 1 ? figure(await rocChart(a.roc.fpr, a.roc.tpr, typeof a.auc === 'number' ? a.auc : undefined), 'ROC curve of the membership-inference attack; the dashed diagonal is chance.') : NA('ROC curve: not available.');
  return `<section id="audit"><h2>5. Privacy audit</h2>${verdict}<div class="split">${kv(rows)}${roc}</div></section>`;
}

/** Config values that are plain dataset hashes are flagged, never repeated (they allow membership tests). */
function configValue(key: string, v: Json, keyed: string | undefined): string {
  if (typeof v === 'string' && /fingerprint|sha256|hash/i.test(key) && v !== keyed && !(keyed && v.startsWith(keyed)) && looksLikePlainHash(v))
    return '<span class="bad">plain hash (released: allows membership tests)</span> <span class="muted">— value not repeated here</span>';
  return h(jsonInline(v));
}

function reproduceSection(run: RunFolder): string {
  const m = run.manifest;
  const keyed = m?.dataset?.fingerprint;
  const config = m ? (m.config as JsonObject) : run.config;
  const source = m ? 'run.json' : 'config.json';
  const cfg = config
    ? table(
        ['setting', 'value'],
        flatten(config)
          .filter(([k]) => k !== 'command')
          .map(([k, v]) => [`<code>${h(k)}</code>`, configValue(k, v, keyed)]),
      )
    : run.damaged['config.json']
      ? DAMAGED('config.json', run.damaged['config.json'])
      : NA('Not available: no config.json in this run folder.');
  const commands = (m?.attempts ?? []).filter((a) => Array.isArray(a.command) && a.command.length).map((a) => argvLine(a.command!));
  let cmdHtml: string;
  if (commands.length > 1) {
    cmdHtml = `<p>The exact commands of this run’s ${commands.length} attempts:</p>${commands.map((c) => `<pre class="cmd">${h(c)}</pre>`).join('')}`;
  } else {
    const cmd = commands[0] ?? commandString(run.config);
    // A bare sub-command name ("synth") is not a reproducible command line: say so rather than pretend.
    const full = cmd !== undefined && /\s/.test(cmd.trim());
    cmdHtml = full
      ? `<p>The exact command of this run:</p><pre class="cmd">${h(cmd)}</pre>`
      : cmd
        ? `<p>Command: <code>${h(cmd)}</code> <span class="na">(the full command line was not recorded; the configuration below holds every setting)</span></p>`
        : NA(`The run’s command is not recorded (${source} has no command field).`);
  }
  return `<section id="reproduce"><h2>6. Reproduce</h2>${cmdHtml}<h3>Configuration <span class="muted">(${source})</span></h3>${cfg}</section>`;
}

function problemsSection(run: RunFolder): string {
  if (!run.problems.length) return '';
  return `<section id="problems"><h2>Problems found while reading the run folder</h2><ul>${run.problems.map((p) => `<li>${h(p)}</li>`).join('')}</ul></section>`;
}

const CSS = `
:root{--fg:#1d2430;--muted:#667085;--line:#e3e6eb;--bg:#f7f8fa;--ok:#137333;--warn:#a15c00;--bad:#b3261e;--accent:#1f5fbf}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
header h1{margin:0 0 4px;font-size:26px}
header p{margin:0;color:var(--muted)}
h2{margin:36px 0 12px;padding-bottom:6px;border-bottom:2px solid var(--line);font-size:20px}
h3{font-size:16px;margin:20px 0 8px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin:20px 0 4px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:var(--bg)}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.card .value{font-size:20px;font-weight:600;word-break:break-word}
.guarantee{font-size:16px;padding:12px 16px;border-left:4px solid var(--accent);background:#f1f5fc}
.guarantee.not-established{border-left-color:var(--bad);background:#fcf1f0;color:var(--bad)}
table{border-collapse:collapse;margin:8px 0 12px;font-size:14px}
th,td{border-bottom:1px solid var(--line);padding:6px 10px;text-align:left;vertical-align:top}
thead th{background:var(--bg);font-weight:600}
table.kv th{width:200px;color:var(--muted);font-weight:500}
table.num td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);padding:1px 4px;border-radius:3px}
code.fp{word-break:break-all}
pre.cmd{background:#0f1720;color:#e6edf3;padding:12px 14px;border-radius:6px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.na{color:var(--muted);font-style:italic}
.muted{color:var(--muted)}
.ok{color:var(--ok)} .warn{color:var(--warn)} .bad{color:var(--bad)}
figure{margin:12px 0}
figcaption{color:var(--muted);font-size:13px;margin-top:4px}
.samples img{image-rendering:pixelated;image-rendering:crisp-edges;border:1px solid var(--line);max-width:100%;height:auto}
.charts{display:flex;flex-wrap:wrap;gap:8px 28px}
.chart svg{display:block;max-width:100%;height:auto}
.split{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}
nav{margin-top:12px;font-size:14px}
nav a{color:var(--accent);margin-right:14px;text-decoration:none}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@media print{body{background:#fff}main{padding:0}}
`;

function cards(run: RunFolder, p: PrivacySummary): string {
  const method = methodName(run, p);
  const items: [string, string][] = [
    ['ε spent', p.epsilon === undefined ? '—' : formatNumber(p.epsilon)],
    ['δ', formatNumber(p.delta)],
    ['accountant', p.accountant ?? '—'],
    ['method', method ?? '—'],
    ['guarantee', !run.ledgerPath && !run.ledgerMissing ? 'none (no ledger)' : p.established ? 'established' : 'NOT established'],
    ['relation', p.relation ?? 'not recorded'],
    ['ledger check', p.integrity.status],
    ['randomness', p.randomness.kind],
  ];
  return `<div class="cards">${items.map(([l, v]) => `<div class="card"><div class="label">${h(l)}</div><div class="value">${h(v)}</div></div>`).join('')}</div>`;
}

export async function renderReportHtml(run: RunFolder, privacy: PrivacySummary, generatedAt: Date = new Date()): Promise<string> {
  const name = basename(run.dir.replace(/[\\/]+$/, '')) || run.dir;
  const method = methodName(run, privacy);
  const sections = [
    privacySection(run, privacy),
    samplesSection(run),
    await curvesSection(run),
    utilitySection(run),
    await auditSection(run),
    reproduceSection(run),
    problemsSection(run),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>dplens report — ${h(name)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>dplens report — ${h(name)}</h1>
<p>${method ? `method <code>${h(method)}</code> · ` : ''}generated ${h(generatedAt.toISOString())} from <code>${h(run.dir)}</code></p>
<nav><a href="#privacy">privacy</a><a href="#samples">samples</a><a href="#curves">curves</a><a href="#utility">utility</a><a href="#audit">audit</a><a href="#reproduce">reproduce</a></nav>
</header>
${cards(run, privacy)}
${sections.join('\n')}
<footer>Self-contained report written by dplens: no scripts, no external resources. Charts rendered with Vega-Lite/Vega in Node.</footer>
</main>
</body>
</html>
`;
}
