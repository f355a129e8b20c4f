/**
 * Charts for the report: Vega-Lite specs compiled to Vega and rendered headless in Node
 * (renderer 'none' + View.toSVG()), so the report is static SVG with no script and no network.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { MetricRow } from './run-folder.js';

export interface SeriesPoint {
  x: number;
  y: number;
  series: string;
}

const WIDTH = 440;
const HEIGHT = 220;
/** Charts with more points than this are thinned evenly (first and last kept): SVG size stays bounded. */
export const MAX_POINTS_PER_SERIES = 400;

const BASE_CONFIG = {
  font: 'system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: 'bottom' },
  view: { stroke: '#cccccc' },
};

/** Renders a Vega-Lite spec to an SVG string that can be inlined in HTML (no xmlns URLs, no script). */
export async function renderVegaLite(spec: Record<string, unknown>): Promise<string> {
  const compiled = vl.compile({ config: BASE_CONFIG, ...spec } as unknown as vl.TopLevelSpec).spec;
  // The loader must never fetch: every chart's data is inline.
  const loader = vega.loader({ mode: 'file' });
  loader.load = async () => {
    throw new Error('report charts use inline data only');
  };
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader });
  try {
    const svg = await view.toSVG();
    // Inline SVG in HTML5 needs no namespace declarations; dropping them keeps the file free of URLs.
    return svg.replace(/\s+xmlns(:xlink)?="[^"]*"/g, '');
  } finally {
    view.finalize();
  }
}

/** Evenly thins rows to at most `max`, always keeping the first and the last. */
export function thin<T>(rows: readonly T[], max: number = MAX_POINTS_PER_SERIES): T[] {
  if (rows.length <= max) return rows.slice();
  const out: T[] = [];
  const stride = (rows.length - 1) / (max - 1);
  for (let i = 0; i < max; i++) out.push(rows[Math.round(i * stride)]!);
  return out;
}

/** Line chart of several named series against a shared x axis. */
export async function lineChart(points: SeriesPoint[], opts: { xTitle: string; yTitle: string; yZero?: boolean; logY?: boolean }): Promise<string> {
  const series = [...new Set(points.map((p) => p.series))];
  return renderVegaLite({
    width: WIDTH,
    height: HEIGHT,
    data: { values: points },
    mark: { type: 'line', point: points.length <= 60, strokeWidth: 1.8 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.xTitle },
      y: {
        field: 'y',
        type: 'quantitative',
        title: opts.yTitle,
        scale: opts.logY ? { type: 'log' } : { zero: opts.yZero ?? false },
      },
      color: { field: 'series', type: 'nominal', title: null, sort: series, legend: series.length > 1 ? {} : null },
    },
  });
}

/** Series of `metrics` whose key matches `pick`, as chart points (non-finite values dropped). */
export function metricSeries(metrics: readonly MetricRow[], keys: readonly string[]): SeriesPoint[] {
  const points: SeriesPoint[] = [];
  for (const key of keys) {
    const rows = metrics.filter((r) => typeof r[key] === 'number' && Number.isFinite(r[key] as number));
    for (const r of thin(rows)) points.push({ x: r.step, y: r[key] as number, series: key });
  }
  return points;
}

/** ROC curve of a membership-inference audit, with the chance diagonal. */
export async function rocChart(fpr: readonly number[], tpr: readonly number[], auc?: number): Promise<string> {
  const pairs = fpr.map((f, i) => ({ fpr: f, tpr: tpr[i]! })).sort((a, b) => a.fpr - b.fpr || a.tpr - b.tpr);
  const curve = thin(pairs, 1000).map((p) => ({ ...p, series: auc !== undefined ? `attack (AUC ${auc.toFixed(3)})` : 'attack' }));
  const chance = [
    { fpr: 0, tpr: 0, series: 'chance' },
    { fpr: 1, tpr: 1, series: 'chance' },
  ];
  return renderVegaLite({
    width: 300,
    height: 300,
    data: { values: [...curve, ...chance] },
    mark: { type: 'line', strokeWidth: 1.8 },
    encoding: {
      x: { field: 'fpr', type: 'quantitative', title: 'false positive rate', scale: { domain: [0, 1] } },
      y: { field: 'tpr', type: 'quantitative', title: 'true positive rate', scale: { domain: [0, 1] } },
      color: { field: 'series', type: 'nominal', title: null, scale: { range: ['#1f77b4', '#999999'] } },
      strokeDash: { field: 'series', type: 'nominal', legend: null, scale: { range: [[1, 0], [4, 4]] } },
      order: { field: 'fpr', type: 'quantitative' },
    },
  });
}
