import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { readFileText } from './fs.js';
import { checkNoEmptyClasses } from './validate.js';
import { DataError, type ColumnEncoding, type DisclosedStatistic, type TabularDataset, type TabularSplit } from './types.js';

/**
 * CSV tables → TabularDataset.
 *
 * Format: RFC 4180 (a header row, fields separated by `delimiter` (default ','), double-quoted
 * fields may hold delimiters, newlines and "" escapes; CRLF or LF; a UTF-8 BOM is ignored; blank
 * lines are skipped). Every row must have as many fields as the header.
 *
 * Schema inference: the label column is `labelColumn`, else the first of label/class/target/y
 * (case-insensitive), else the last column. Every other column is numeric when each non-empty
 * cell parses as a number, categorical when at most half of them do; a MOSTLY numeric column
 * with some non-numeric cells is an error naming the first such cell (a typo must not silently
 * turn a numeric column into a one-hot one), unless `columns` declares it. `columns` overrides per
 * column ('numeric', 'categorical' or 'ignore', or a public declaration of the encoding:
 * `{kind: 'numeric', min, max}` or `{kind: 'categorical', categories}`). Numeric cells must be
 * present and finite (an empty cell, NaN or Inf is an error naming the line and column).
 * Categorical cells are strings ('' is its own category).
 *
 * Privacy: inferred kinds and the statistics below are derived from the private data; the
 * dataset's `disclosure` lists each one and what it reveals. Declared encodings and `classNames`
 * are public input and make the encoding data-independent.
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

/**
 * A column's encoding given as PUBLIC input (not computed from the data): a numeric range
 * (features are mapped linearly to [−1, 1]; a value outside it is an error) or the category list
 * (one-hot in this order; a value outside it is an error).
 */
export type ColumnDeclaration = { kind: 'numeric'; min: number; max: number } | { kind: 'categorical'; categories: string[] };

export interface CsvOptions {
  name?: string;
  labelColumn?: string;
  columns?: Record<string, ColumnKind | ColumnDeclaration>;
  /** Public class list: label texts in class-index order (default: the sorted training labels, derived from the data). */
  classNames?: string[];
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

const readText = readFileText;

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
  const declared = new Map<string, ColumnDeclaration>();
  const overrides = new Map<string, ColumnKind>();
  for (const c of Object.keys(opts.columns ?? {})) {
    if (!header.includes(c)) throw new DataError(`${file}: column override '${c}' not in header (${header.join(', ')})`);
    const k = opts.columns![c]!;
    if (typeof k === 'object' && k !== null) {
      if (k.kind === 'numeric') {
        if (!(Number.isFinite(k.min) && Number.isFinite(k.max) && k.max > k.min)) throw new DataError(`${file}: column '${c}': declared numeric range needs finite min < max, got [${k.min}, ${k.max}]`);
      } else if (k.kind === 'categorical') {
        if (!Array.isArray(k.categories) || k.categories.length === 0 || new Set(k.categories).size !== k.categories.length) throw new DataError(`${file}: column '${c}': declared categories must be a non-empty list without duplicates`);
      } else throw new DataError(`${file}: column override '${c}': declared kind must be numeric or categorical, got '${String((k as { kind?: unknown }).kind)}'`);
      declared.set(c, k);
      overrides.set(c, k.kind);
    } else if (k === 'numeric' || k === 'categorical' || k === 'ignore') overrides.set(c, k);
    else throw new DataError(`${file}: column override '${c}': kind must be numeric, categorical or ignore, got '${String(k)}'`);
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
  const all = [...trainRows, ...testRows];
  const kinds: ColumnKind[] = header.map((h, c) => {
    if (c === labelIdx) return 'ignore';
    const o = overrides.get(h);
    if (o) return o;
    const nonEmpty = all.filter((r) => r.cells[c]!.trim() !== '');
    const notNumbers = nonEmpty.filter((r) => !isNumberLike(r.cells[c]!));
    if (nonEmpty.length > 0 && notNumbers.length === 0) return 'numeric';
    // Mostly numbers with a few other cells: most likely a typo in a numeric column. Treating it
    // as categorical would one-hot every distinct number (accuracy 0.88 → 0.45 on a real table).
    if (nonEmpty.length - notNumbers.length > notNumbers.length) {
      const r = notNumbers[0]!;
      throw new DataError(
        `${r.file}: line ${r.line}, column '${h}': '${r.cells[c]!.trim()}' is not a number, but ${nonEmpty.length - notNumbers.length} of ${nonEmpty.length} cells of '${h}' are numbers` +
          `; fix the cell(s), or declare the column categorical (columns: { '${h}': 'categorical' }, CLI --categorical ${h})`,
      );
    }
    return 'categorical';
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

  // Classes: declared (public), else from the training split (derived from the data).
  if (opts.classNames !== undefined) {
    if (opts.classNames.length < 2 || new Set(opts.classNames).size !== opts.classNames.length) throw new DataError(`${file}: declared class names must be at least 2 distinct values, got ${opts.classNames.join(', ')}`);
  }
  const classNames = opts.classNames ? [...opts.classNames] : sortLabels([...new Set(trainRows.map((r) => r.cells[labelIdx]!.trim()))]);
  if (classNames.length < 2) throw new DataError(`${file}: label column '${labelColumn}' has ${classNames.length} distinct value(s) in the training split; need at least 2 classes`);
  const classIndex = new Map(classNames.map((c, k) => [c, k]));

  // Encodings.
  const columns: ColumnEncoding[] = [];
  const statistics: DisclosedStatistic[] = [];
  let offset = 0;
  header.forEach((h, c) => {
    const kind = kinds[c]!;
    if (kind === 'ignore') return;
    const decl = declared.get(h);
    if (decl?.kind === 'numeric') {
      // Public range → [−1, 1]: centre and half-width play the roles of mean and std.
      columns.push({ name: h, kind: 'numeric', mean: (decl.min + decl.max) / 2, std: (decl.max - decl.min) / 2, offset, width: 1, declared: true });
      offset += 1;
    } else if (decl?.kind === 'categorical') {
      columns.push({ name: h, kind: 'categorical', categories: [...decl.categories], offset, width: decl.categories.length, declared: true });
      offset += decl.categories.length;
    } else if (kind === 'numeric') {
      let sum = 0;
      for (const r of trainRows) sum += numericValue(r, c);
      const mean = sum / trainRows.length;
      let ss = 0;
      for (const r of trainRows) ss += (numericValue(r, c) - mean) ** 2;
      const sd = Math.sqrt(ss / trainRows.length);
      columns.push({ name: h, kind: 'numeric', mean, std: sd > 0 ? sd : 1, offset, width: 1 });
      offset += 1;
      statistics.push({
        column: h,
        what: `mean and population standard deviation over the ${trainRows.length} training rows`,
        reveals: `a function of every training record's '${h}'; one record moves the mean by up to (max − min)/n, and an outlier shows in the std`,
      });
    } else {
      const counts = new Map<string, number>();
      for (const r of trainRows) counts.set(r.cells[c]!, (counts.get(r.cells[c]!) ?? 0) + 1);
      const categories = [...counts.keys()].sort();
      columns.push({ name: h, kind: 'categorical', categories, offset, width: categories.length });
      offset += categories.length;
      const singles = categories.filter((v) => counts.get(v) === 1).length;
      statistics.push({
        column: h,
        what: `category list (${categories.length} distinct values of the training split, verbatim; the one-hot width ${categories.length} is also the released model's input size)`,
        reveals: `every value occurring in some training record${singles ? `; ${singles} value(s) occur in exactly one record, so their presence reveals that record` : ''}`,
      });
    }
  });
  if (!opts.classNames) {
    statistics.push({
      column: labelColumn,
      what: `class list (the ${classNames.length} distinct label values of the training split, verbatim)`,
      reveals: 'every label value that some training record holds',
    });
  }
  const numFeatures = offset;
  const columnIndex = columns.map((col) => header.indexOf(col.name));

  const encode = (rows: typeof trainRows, split: string): TabularSplit => {
    const features = new Float32Array(rows.length * numFeatures);
    const labels = new Int32Array(rows.length);
    rows.forEach((r, i) => {
      const y = classIndex.get(r.cells[labelIdx]!.trim());
      if (y === undefined) {
        if (opts.classNames) throw new DataError(`${r.file}: line ${r.line}: label '${r.cells[labelIdx]}' is not one of the declared class names (${classNames.join(', ')})`);
        throw new DataError(`${r.file}: line ${r.line}: label '${r.cells[labelIdx]}' in the ${split} split does not occur in the training split (classes: ${classNames.join(', ')})`);
      }
      labels[i] = y;
      const base = i * numFeatures;
      for (let j = 0; j < columns.length; j++) {
        const col = columns[j]!;
        const c = columnIndex[j]!;
        if (col.kind === 'numeric') {
          const v = numericValue(r, c);
          if (col.declared && Math.abs(v - col.mean) > col.std) {
            throw new DataError(`${r.file}: line ${r.line}, column '${col.name}': ${v} is outside the declared range [${col.mean - col.std}, ${col.mean + col.std}]`);
          }
          features[base + col.offset] = (v - col.mean) / col.std;
        } else {
          const k = col.categories.indexOf(r.cells[c]!);
          if (k >= 0) features[base + col.offset + k] = 1;
          else if (col.declared) throw new DataError(`${r.file}: line ${r.line}, column '${col.name}': '${r.cells[c]}' is not one of the declared categories (${col.categories.join(', ')})`);
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
    rawFingerprint: h.digest('hex'),
    source: file,
    disclosure: {
      numClasses: opts.classNames ? 'declared' : 'derived-from-data',
      classNames: opts.classNames ? 'declared' : 'derived-from-data',
      schema: header.every((hd, c) => c === labelIdx || overrides.has(hd)) ? 'declared' : 'derived-from-data',
      statistics,
    },
  };
}
