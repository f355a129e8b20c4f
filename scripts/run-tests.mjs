#!/usr/bin/env node
// Runs every test/**/*.test.ts file with node:test (through tsx), one process per file.
// Node 20's test runner has no glob support, hence this small finder.
// Usage: node scripts/run-tests.mjs [substring-filter ...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = find('test').sort().filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) { console.error('no test files matched'); process.exit(1); }
const concurrency = process.env.DPLENS_TEST_CONCURRENCY ?? '1';
// Tests never touch the user's real owner key (~/.config/dplens/owner.key): one throw-away key
// per test run, shared by every test file and the CLI processes they start.
const env = { ...process.env };
// Likewise the evaluation cache (the fidelity feature net): tests never write into ~/.cache.
if (!env.DPLENS_CACHE_DIR) env.DPLENS_CACHE_DIR = mkdtempSync(join(tmpdir(), 'dplens-test-cache-'));
if (!env.DPLENS_OWNER_KEY_FILE) env.DPLENS_OWNER_KEY_FILE = join(mkdtempSync(join(tmpdir(), 'dplens-test-key-')), 'owner.key');
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
