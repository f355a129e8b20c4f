import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { checkNoEmptyClasses } from './validate.js';
import { DataError, type ColumnEncoding, type TabularDataset, type TabularSplit } from './types.js';

/**
 * CSV tables → TabularDataset.
 *
 * Format: RFC 4180 (a header row, fields separated by `delimiter` (default ','), double-quoted
 * fields may hold delimiters, newlines and "" escapes; CRLF or LF; a UTF-8 BOM is ignored; blank
 * lines are skipped). Every row must have as many fields as the header.
 *
 * Schema inference: the label column is `labelColumn`, else the first of label/class/target/y
 * (case-insensitive), else the last column. Every other column is numeric when each non-empty
 * cell parses as a number, else categorical; `columns` overrides per column ('numeric',
 * 'categorical' or 'ignore'). Numeric cells must be present and finite (an empty cell, NaN or Inf
 * is an error naming the line and column). Categorical cells are strings ('' is its own category).
 *
 * Encoding (statistics from the training split only): numeric → (x − mean) / std (std 1 when
 * constant); categorical → one-hot over the sorted training categories (unseen test values → all
 * zeros). Classes: sorted label texts of the training split (numerically if all are integers).
 *
 * Split: with `testPath`, that file is the test split (same header). Otherwise data row i
 * (0-based, file order) goes to test when i % testEvery === testEvery − 1 (default testEvery 5,
 * i.e. 20% test, interleaved so sorted files still give a representative test split).
 */

export type ColumnKind = 'numeric' | 'categorical' | 'ignore';

export interface CsvOptions {
  name?: string;
  labelColumn?: string;
  columns?: Record<string, ColumnKind>;
  delimiter?: string;
  testPath?: string;
  testEvery?: number;
}

export interface CsvTable {
  header: string[];
  rows: string[][];
  /** 1-based line number where each row starts (for messages). */
  lines: number[];
}

/** Parses CSV text; every row must have the header's arity. */
export function parseCsv(text: string, file: string, delimiter = ','): CsvTable {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n') throw new DataError(`${file}: invalid CSV delimiter ${JSON.stringify(delimiter)}`);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records: string[][] = [];
  const lines: number[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let field = '';
    let quotedField = false;
    for (;;) {
      if (i >= n) {
        fields.push(field);
        break;
      }
      const c = text[i]!;
      if (c === '"' && field === '' && !quotedField) {
        // Quoted field.
        quotedField = true;
        i++;
        for (;;) {
          if (i >= n) throw new DataError(`${file}: line ${startLine}: unterminated quoted field`);
          const q = text[i]!;
          if (q === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (q === '\n') line++;
          field += q;
          i++;
        }
        continue;
      }
      if (c === delimiter) {
        fields.push(field);
        field = '';
        quotedField = false;
        i++;
        continue;
      }
      if (c === '\r' && text[i + 1] === '\n') {
        i++;
        continue;
      }
      if (c === '\n') {
        fields.push(field);
        i++;
        line++;
        break;
      }
      if (quotedField) throw new DataError(`${file}: line ${line}: unexpected character after closing quote`);
      field += c;
      i++;
    }
    if (fields.length === 1 && fields[0]!.trim() === '') continue; // blank line
    records.push(fields);
    lines.push(startLine);
  }
  if (records.length === 0) throw new DataError(`${file}: empty CSV file (no header)`);
  const header = records[0]!.map((h) => h.trim());
  const seen = new Set<string>();
  for (const h of header) {
    if (seen.has(h)) throw new DataError(`${file}: duplicate column name '${h}' in header`);
    seen.add(h);
  }
  const rows = records.slice(1);
  const rowLines = lines.slice(1);
  rows.forEach((r, k) => {
    if (r.length !== header.length) throw new DataError(`${file}: line ${rowLines[k]}: wrong number of fields: ${r.length}, expected ${header.length} (header: ${header.join(delimiter)})`);
  });
  return { header, rows, lines: rowLines };
}

const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const NONFINITE_RE = /^[+-]?(nan|inf|infinity)$/i;

function isNumberLike(s: string): boolean {
  const t = s.trim();
  return NUMBER_RE.test(t) || NONFINITE_RE.test(t);
}

function sortLabels(values: string[]): string[] {
  if (values.every((v) => /^[+-]?\d+$/.test(v))) return [...values].sort((a, b) => Number(a) - Number(b));
  return [...values].sort();
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Loads a CSV file (and optional separate test CSV) as an encoded TabularDataset. */
export function loadCsvDataset(file: string, opts: CsvOptions = {}): TabularDataset {
  const table = parseCsv(readText(file), file, opts.delimiter);
  const { header } = table;
  if (header.length < 2) throw new DataError(`${file}: need at least one feature column and a label column, header has ${header.length} column(s)`);
  let labelColumn = opts.labelColumn;
  if (labelColumn !== undefined) {
    if (!header.includes(labelColumn)) throw new DataError(`${file}: label column '${labelColumn}' not in header (${header.join(', ')})`);
  } else {
    labelColumn = ['label', 'class', 'target', 'y'].map((c) => header.find((h) => h.toLowerCase() === c)).find((h) => h !== undefined) ?? header[header.length - 1]!;
  }
  for (const c of Object.keys(opts.columns ?? {})) {
    if (!header.includes(c)) throw new DataError(`${file}: column override '${c}' not in header (${header.join(', ')})`);
    const k = opts.columns![c];
    if (k !== 'numeric' && k !== 'categorical' && k !== 'ignore') throw new DataError(`${file}: column override '${c}': kind must be numeric, categorical or ignore, got '${String(k)}'`);
  }
  const labelIdx = header.indexOf(labelColumn);

  // Split.
  let trainRows: { cells: string[]; line: number; file: string }[];
  let testRows: { cells: string[]; line: number; file: string }[];
  if (opts.testPath) {
    const t = parseCsv(readText(opts.testPath), opts.testPath, opts.delimiter);
    if (t.header.join('\u0000') !== header.join('\u0000')) throw new DataError(`${opts.testPath}: header (${t.header.join(', ')}) differs from ${file} (${header.join(', ')})`);
    trainRows = table.rows.map((cells, k) => ({ cells, line: table.lines[k]!, file }));
    testRows = t.rows.map((cells, k) => ({ cells, line: t.lines[k]!, file: opts.testPath! }));
  } else {
    const every = opts.testEvery ?? 5;
    if (!Number.isInteger(every) || every < 2) throw new DataError(`${file}: testEvery must be an integer ≥ 2, got ${every}`);
    trainRows = [];
    testRows = [];
    table.rows.forEach((cells, k) => (k % every === every - 1 ? testRows : trainRows).push({ cells, line: table.lines[k]!, file }));
  }
  if (trainRows.length === 0) throw new DataError(`${file}: no data rows`);

  // Schema.
  const kinds: ColumnKind[] = header.map((h, c) => {
    if (c === labelIdx) return 'ignore';
    const o = opts.columns?.[h];
    if (o) return o;
    const all = [...trainRows, ...testRows];
    const nonEmpty = all.filter((r) => r.cells[c]!.trim() !== '');
    return nonEmpty.length > 0 && nonEmpty.every((r) => isNumberLike(r.cells[c]!)) ? 'numeric' : 'categorical';
  });

  const numericValue = (r: { cells: string[]; line: number; file: string }, c: number): number => {
    const s = r.cells[c]!.trim();
    const where = `${r.file}: line ${r.line}, column '${header[c]}'`;
    if (s === '') throw new DataError(`${where}: missing numeric value`);
    if (!NUMBER_RE.test(s)) {
      if (NONFINITE_RE.test(s)) throw new DataError(`${where}: ${/nan/i.test(s) ? 'NaN' : 'Inf'} is not allowed`);
      throw new DataError(`${where}: '${s}' is not a number`);
    }
    const v = Number(s);
    if (!Number.isFinite(v)) throw new DataError(`${where}: Inf is not allowed ('${s}' overflows)`);
    return v;
  };

  // Classes from the training split.
  const classNames = sortLabels([...new Set(trainRows.map((r) => r.cells[labelIdx]!.trim()))]);
  if (classNames.length < 2) throw new DataError(`${file}: label column '${labelColumn}' has ${classNames.length} distinct value(s) in the training split; need at least 2 classes`);
  const classIndex = new Map(classNames.map((c, k) => [c, k]));

  // Encodings.
  const columns: ColumnEncoding[] = [];
  let offset = 0;
  header.forEach((h, c) => {
    const kind = kinds[c]!;
    if (kind === 'ignore') return;
    if (kind === 'numeric') {
      let sum = 0;
      for (const r of trainRows) sum += numericValue(r, c);
      const mean = sum / trainRows.length;
      let ss = 0;
      for (const r of trainRows) ss += (numericValue(r, c) - mean) ** 2;
      const sd = Math.sqrt(ss / trainRows.length);
      columns.push({ name: h, kind: 'numeric', mean, std: sd > 0 ? sd : 1, offset, width: 1 });
      offset += 1;
    } else {
      const categories = [...new Set(trainRows.map((r) => r.cells[c]!))].sort();
      columns.push({ name: h, kind: 'categorical', categories, offset, width: categories.length });
      offset += categories.length;
    }
  });
  const numFeatures = offset;
  const columnIndex = columns.map((col) => header.indexOf(col.name));

  const encode = (rows: typeof trainRows, split: string): TabularSplit => {
    const features = new Float32Array(rows.length * numFeatures);
    const labels = new Int32Array(rows.length);
    rows.forEach((r, i) => {
      const y = classIndex.get(r.cells[labelIdx]!.trim());
      if (y === undefined) throw new DataError(`${r.file}: line ${r.line}: label '${r.cells[labelIdx]}' in the ${split} split does not occur in the training split (classes: ${classNames.join(', ')})`);
      labels[i] = y;
      const base = i * numFeatures;
      for (let j = 0; j < columns.length; j++) {
        const col = columns[j]!;
        const c = columnIndex[j]!;
        if (col.kind === 'numeric') features[base + col.offset] = (numericValue(r, c) - col.mean) / col.std;
        else {
          const k = col.categories.indexOf(r.cells[c]!);
          if (k >= 0) features[base + col.offset + k] = 1;
        }
      }
    });
    return { features, labels, count: rows.length };
  };
  const train = encode(trainRows, 'training');
  const test = encode(testRows, 'test');
  checkNoEmptyClasses(train.labels, classNames.length, file, classNames);

  // Fingerprint: schema + encoded training features + labels (the encoding is a deterministic function of the raw cells).
  const h = createHash('sha256');
  h.update(JSON.stringify({ count: train.count, labelColumn, classNames, columns }));
  h.update(new Uint8Array(train.features.buffer, train.features.byteOffset, train.features.byteLength));
  h.update(new Uint8Array(train.labels.buffer, train.labels.byteOffset, train.labels.byteLength));

  return {
    kind: 'tabular',
    name: opts.name ?? basename(file).replace(/\.csv$/i, ''),
    labelColumn,
    numClasses: classNames.length,
    classNames,
    columns,
    numFeatures,
    train,
    test,
    fingerprint: h.digest('hex'),
    source: file,
  };
}
