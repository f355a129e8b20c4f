/**
 * Issue 13, the report's seams: no import cycle inside report/, no dynamic import of project
 * modules in report/ or runs/, no method names hard-coded in the HTML renderer (descriptions come
 * from run.json), and the report reads the typed manifest instead of guessing config shapes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

const files = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f));
const relativeImports = (file: string): string[] =>
  [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gm)].map((m) => normalize(join(dirname(file), m[1]!.replace(/\.js$/, '.ts'))));

test('report/ has no import cycle', () => {
  const graph = new Map(files('src/report').map((f) => [normalize(f), relativeImports(f).filter((t) => t.startsWith('src/report/'))]));
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    assert.notEqual(state.get(f), 'visiting', `import cycle: ${[...path, f].join(' → ')}`);
    state.set(f, 'visiting');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
});

test('report/ and runs/ make no dynamic import of project modules', () => {
  for (const f of [...files('src/report'), ...files('src/runs')]) {
    assert.doesNotMatch(readFileSync(f, 'utf8'), /\bimport\(\s*['"`]\./, `${f} imports a project module dynamically`);
  }
});

test('the HTML renderer names no method: descriptions come from run.json', () => {
  const html = readFileSync('src/report/html.ts', 'utf8');
  assert.doesNotMatch(html, /datalens|g-?pate/i);
  assert.ok(relativeImports('src/report/run-folder.ts').includes(normalize('src/runs/manifest.ts')), 'run-folder reads the typed manifest');
});
