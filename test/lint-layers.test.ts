/**
 * The layer order of src/ is enforced by `npm run lint` (eslint.config.js LAYERS): an import from a
 * lower layer into a higher one, or a dynamic import() of a project module outside cli/, fails.
 * Also: the static import graph of src/ has no cycle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ESLint } from 'eslint';

const eslint = new ESLint({ cwd: process.cwd() });

async function messages(code: string, filePath: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath });
  return r!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

test('lint: an upward import (nn → report, privacy → runs) is an error', async () => {
  const up1 = await messages(`import { writeReport } from '../report/index.js';\nexport const f = writeReport;\n`, 'src/nn/upward-probe.ts');
  assert.ok(up1.some((m) => m.startsWith('no-restricted-imports') && m.includes('layer violation')), up1.join('\n'));
  const up2 = await messages(`import type { RunManifest } from '../runs/manifest.js';\nexport type M = RunManifest;\n`, 'src/privacy/upward-probe.ts');
  assert.ok(up2.some((m) => m.includes('layer violation')), up2.join('\n'));
  // Same-rank siblings are refused too (train ↛ generate).
  const side = await messages(`import * as g from '../generate/index.js';\nexport const x = g;\n`, 'src/train/sideways-probe.ts');
  assert.ok(side.some((m) => m.includes('layer violation')), side.join('\n'));
});

test('lint: downward imports are allowed', async () => {
  const down = await messages(`import { DpEvents } from '../privacy/index.js';\nexport const e = DpEvents;\n`, 'src/report/downward-probe.ts');
  assert.deepEqual(down.filter((m) => m.includes('layer violation')), []);
  const cli = await messages(`import { writeReport } from '../../report/index.js';\nexport const f = writeReport;\n`, 'src/cli/commands/probe.ts');
  assert.deepEqual(cli.filter((m) => m.includes('layer violation')), []);
});

test('lint: dynamic import() of a project module outside cli/ is an error', async () => {
  const dyn = await messages(`export async function f() { return (await import('../data/index.js')).loadMnist; }\n`, 'src/train/dyn-probe.ts');
  assert.ok(dyn.some((m) => m.startsWith('no-restricted-syntax')), dyn.join('\n'));
  const ok = await messages(`export async function f() { return (await import('node:fs')).readFileSync; }\n`, 'src/train/dyn-probe.ts');
  assert.deepEqual(ok.filter((m) => m.startsWith('no-restricted-syntax')), []);
});

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('src/ static import graph has no cycle', () => {
  // Type-only imports count too: a type cycle still ties two modules into one unit.
  const files = tsFiles('src').map((f) => resolve(f));
  const set = new Set(files);
  const edges = new Map<string, string[]>();
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    const out: string[] = [];
    for (const m of src.matchAll(/^\s*(?:import|export)\s+[^'";]*?from\s+'(\.[^']+)'/gm)) {
      const target = resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts'));
      if (set.has(target)) out.push(target);
    }
    edges.set(f, out);
  }
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  let cycle: string[] | undefined;
  const visit = (f: string): void => {
    if (cycle) return;
    state.set(f, 1);
    stack.push(f);
    for (const g of edges.get(f) ?? []) {
      if (state.get(g) === 1) { cycle = [...stack.slice(stack.indexOf(g)), g]; return; }
      if (!state.has(g)) visit(g);
      if (cycle) return;
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.equal(cycle, undefined, `import cycle: ${(cycle ?? []).map((p) => p.slice(process.cwd().length + 1)).join(' → ')}`);
});
