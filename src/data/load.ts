import { extname, resolve } from 'node:path';
import { loadCsvDataset, type ColumnDeclaration, type ColumnKind } from './csv.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from './fashion.js';
import { statOrUndefined } from './fs.js';
import { isIdxFolder, loadIdxFolder, loadMnist, MNIST_CLASSES } from './mnist.js';
import { loadNpzDataset, loadPneumonia, PNEUMONIA_CLASSES } from './npz-dataset.js';
import { isPngFolder, loadPngFolder } from './png-folder.js';
import { DataError, type ColumnEncoding, type Dataset, type ImageDataset, type TabularDataset } from './types.js';
import { builtinDisclosure } from './validate.js';

/** Built-in dataset names accepted by `--data`. */
export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist', 'pneumonia'] as const;
export type BuiltinDataset = (typeof BUILTIN_DATASETS)[number];

export type DataFormat = 'idx' | 'npz' | 'png-folder' | 'csv';

/** What a caller needs back from loadDataset. */
export type DatasetKindWanted = 'image' | 'tabular' | 'any';

/**
 * What to load. Either a built-in `name` (optionally relocated by `path`) or a `path`.
 * `numClasses` / `classNames` (and a CSV's `columns` declarations) are PUBLIC INPUT: when given,
 * the class list is not derived from the private data (see `disclosure` on the result).
 */
export interface DatasetSpec {
  name?: string;
  /** File or folder; for a built-in name it overrides where that set is read from. */
  path?: string;
  /** Default: from the path (.npz → npz, .csv/.tsv → csv, folder with idx files → idx, folder of class subfolders → png-folder). */
  format?: DataFormat;
  /** Declared class count (npz, idx; default max training label + 1, marked derived-from-data). */
  numClasses?: number;
  /** Declared class names in class-index order (npz, idx, PNG folder subfolders, CSV label values). */
  classNames?: string[];
  /** 'image' (default), 'tabular' (a CSV) or 'any'; a dataset of the other kind is a DataError. */
  expect?: DatasetKindWanted;
  // CSV only (an error for image data):
  labelColumn?: string;
  /** Per-column kind ('numeric' | 'categorical' | 'ignore') or a public declaration of its encoding. */
  columns?: Record<string, ColumnKind | ColumnDeclaration>;
  delimiter?: string;
  testPath?: string;
  testEvery?: number;
}

const CSV_ONLY = ['labelColumn', 'columns', 'delimiter', 'testPath', 'testEvery'] as const;

/** One-line description of `--data` for command help texts, so every command says the same. */
export const DATA_FLAG_HELP =
  "dataset: mnist | fashion-mnist | pneumonia | <path> (a MedMNIST-style .npz, a folder of idx files, a folder of PNGs with one subfolder per class, or a .csv with a label column)";
export const DATA_PATH_FLAG_HELP = 'where to read a built-in --data set from (e.g. --data pneumonia --data-path my/pneumoniamnist.npz)';

/**
 * `--data` / `--data-path` flag specs in the shape src/cli/args.ts expects (FlagSpec), so commands
 * can spread them into their `flags` and every command documents the same thing.
 */
export const DATA_FLAG_SPECS = {
  data: { type: 'string', help: DATA_FLAG_HELP },
  'data-path': { type: 'string', help: DATA_PATH_FLAG_HELP },
} as const satisfies Record<string, { type: 'string' | 'boolean'; help: string }>;

/** DATA_FLAG_SPECS with the command's default dataset named in the --data help. */
export function dataFlagSpecs(defaultName?: string): typeof DATA_FLAG_SPECS {
  if (defaultName === undefined) return DATA_FLAG_SPECS;
  return { ...DATA_FLAG_SPECS, data: { type: 'string', help: `${DATA_FLAG_HELP} (default ${defaultName})` } } as unknown as typeof DATA_FLAG_SPECS;
}

/**
 * Turns the CLI's `--data X [--data-path P]` into a DatasetSpec. A built-in name keeps its name and
 * takes P as its location; anything else is a path (P, if also given, must not conflict).
 * Throws DataError (exit code 2 in the CLI) for an empty value or a path that does not exist.
 */
export function resolveDataFlag(data: string, dataPath?: string): Omit<DatasetSpec, 'expect'> {
  const d = data.trim();
  if (d === '') throw new DataError('--data: empty value (use mnist, fashion-mnist, pneumonia or a path)');
  const lower = d.toLowerCase();
  const alias: Record<string, BuiltinDataset> = { mnist: 'mnist', 'fashion-mnist': 'fashion-mnist', fashion: 'fashion-mnist', fashion_mnist: 'fashion-mnist', pneumonia: 'pneumonia', pneumoniamnist: 'pneumonia' };
  const builtin = alias[lower];
  // Built-in names win over a same-named file or folder in the cwd; write ./mnist to mean a path.
  if (builtin) {
    if (dataPath !== undefined && statOrUndefined(dataPath) === undefined) throw new DataError(`${dataPath}: --data-path does not exist`);
    return dataPath !== undefined ? { name: builtin, path: resolve(dataPath) } : { name: builtin };
  }
  if (dataPath !== undefined && resolve(dataPath) !== resolve(d)) {
    throw new DataError(`--data ${d} is a path; --data-path ${dataPath} only applies to the built-in sets (${BUILTIN_DATASETS.join(', ')})`);
  }
  if (statOrUndefined(d) === undefined) throw new DataError(`${d}: --data is neither a built-in dataset (${BUILTIN_DATASETS.join(', ')}) nor an existing file or folder`);
  return { path: resolve(d) };
}

/** Format a path will be read as. */
export function detectFormat(path: string): DataFormat {
  const st = statOrUndefined(path);
  if (!st) throw new DataError(`${path}: no such file or folder`);
  if (st.isDirectory()) {
    if (isIdxFolder(path)) return 'idx';
    if (isPngFolder(path)) return 'png-folder';
    throw new DataError(`${path}: folder holds neither idx files (train-images-idx3-ubyte, …) nor class subfolders of .png images`);
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.npz') return 'npz';
  if (ext === '.csv' || ext === '.tsv' || ext === '.txt') return 'csv';
  throw new DataError(`${path}: unrecognised data file type '${ext}' (expected .npz or .csv, or a folder)`);
}

const BUILTIN_CLASSES: Record<BuiltinDataset, readonly string[]> = { mnist: MNIST_CLASSES, 'fashion-mnist': FASHION_MNIST_CLASSES, pneumonia: PNEUMONIA_CLASSES };

/** A declared class list must agree with a built-in set's own. */
function checkBuiltinClasses(name: BuiltinDataset, spec: DatasetSpec): void {
  const own = BUILTIN_CLASSES[name];
  if (spec.numClasses !== undefined && spec.numClasses !== own.length) throw new DataError(`${name}: has ${own.length} classes, but numClasses ${spec.numClasses} was given`);
  if (spec.classNames !== undefined && spec.classNames.join('\u0000') !== own.join('\u0000')) throw new DataError(`${name}: its classes are ${own.join(', ')}, but classNames ${spec.classNames.join(', ')} were given`);
}

function loadBuiltin(name: BuiltinDataset, spec: DatasetSpec): ImageDataset {
  checkBuiltinClasses(name, spec);
  if (name === 'pneumonia') return loadPneumonia(spec.path);
  if (spec.path === undefined) return name === 'mnist' ? loadMnist() : loadFashionMnist();
  // A relocated copy of a built-in set keeps that set's class list.
  const d = loadAny({ path: spec.path, ...(spec.format ? { format: spec.format } : {}), classNames: [...BUILTIN_CLASSES[name]] });
  if (d.kind !== 'image') throw new DataError(`${spec.path}: a table (CSV), but --data ${name} needs images`);
  return { ...d, name, disclosure: builtinDisclosure() };
}

function loadAny(spec: DatasetSpec): Dataset {
  if (spec.name !== undefined && (BUILTIN_DATASETS as readonly string[]).includes(spec.name)) return loadBuiltin(spec.name as BuiltinDataset, spec);
  if (spec.path === undefined) {
    throw new DataError(`dataset spec: unknown dataset name '${spec.name ?? ''}' and no path (built-in: ${BUILTIN_DATASETS.join(', ')})`);
  }
  const path = spec.path;
  const format = spec.format ?? detectFormat(path);
  const nameOpt = spec.name !== undefined ? { name: spec.name } : {};
  const classes = { ...(spec.numClasses !== undefined ? { numClasses: spec.numClasses } : {}), ...(spec.classNames !== undefined ? { classNames: spec.classNames } : {}) };
  if (format !== 'csv') {
    const csvOnly = CSV_ONLY.filter((k) => spec[k] !== undefined);
    const what = format === 'npz' ? 'an npz' : format === 'idx' ? 'an idx folder' : 'a PNG folder';
    // (the label-column wording predates this check; CLI tests match it)
    if (spec.labelColumn !== undefined) throw new DataError(`label column '${spec.labelColumn}' given, but ${path} is an image dataset (${what} of images; the label column applies to CSV tables)`);
    if (csvOnly.length) throw new DataError(`${path}: ${csvOnly.join(', ')} only appl${csvOnly.length > 1 ? 'y' : 'ies'} to CSV tables, but this is ${what} of images`);
  }
  switch (format) {
    case 'npz':
      return loadNpzDataset(path, { ...nameOpt, ...classes });
    case 'idx':
      return loadIdxFolder(path, { ...nameOpt, ...classes });
    case 'png-folder':
      if (spec.numClasses !== undefined && spec.classNames === undefined) throw new DataError(`${path}: a PNG folder's classes are its subfolders; declare them with classNames (numClasses alone does not say which)`);
      return loadPngFolder(path, { ...nameOpt, ...(spec.classNames ? { classNames: spec.classNames } : {}) });
    case 'csv': {
      if (spec.numClasses !== undefined && spec.classNames === undefined) throw new DataError(`${path}: a CSV's classes are label texts; declare them with classNames (numClasses alone does not say which)`);
      const delimiter = spec.delimiter ?? (extname(path).toLowerCase() === '.tsv' ? '\t' : undefined);
      return loadCsvDataset(path, {
        ...nameOpt,
        ...(spec.classNames !== undefined ? { classNames: spec.classNames } : {}),
        ...(spec.labelColumn !== undefined ? { labelColumn: spec.labelColumn } : {}),
        ...(spec.columns !== undefined ? { columns: spec.columns } : {}),
        ...(delimiter !== undefined ? { delimiter } : {}),
        ...(spec.testPath !== undefined ? { testPath: spec.testPath } : {}),
        ...(spec.testEvery !== undefined ? { testEvery: spec.testEvery } : {}),
      });
    }
    default:
      throw new DataError(`${path}: unknown format '${String(format)}'`);
  }
}

/**
 * THE dataset loader: every command and runner loads data through this one function.
 * - `spec` as a string is a `--data` value (`loadDataset('mnist')`, `loadDataset('x/table.csv')`,
 *   resolved by resolveDataFlag); as a DatasetSpec: a built-in `name` ('mnist', 'fashion-mnist',
 *   'pneumonia' from ../shared/data or `path`) or a `path` (npz, idx folder, PNG class folder, CSV).
 * - `expect` says what the caller can use: 'image' (the default; a CSV is then a DataError),
 *   'tabular', or 'any' (returns the Dataset union).
 * - `numClasses` / `classNames` / CSV `columns` declarations are public input; without them the
 *   class list is derived from the data and `disclosure` says so.
 * Every problem is a one-line DataError naming the file.
 */
export function loadDataset(spec: string | (DatasetSpec & { expect?: 'image' })): ImageDataset;
export function loadDataset(spec: DatasetSpec & { expect: 'tabular' }): TabularDataset;
export function loadDataset(spec: DatasetSpec & { expect: 'any' }): Dataset;
export function loadDataset(spec: DatasetSpec): Dataset;
export function loadDataset(specOrFlag: string | DatasetSpec): Dataset {
  const spec: DatasetSpec = typeof specOrFlag === 'string' ? resolveDataFlag(specOrFlag) : specOrFlag;
  const expect = spec.expect ?? 'image';
  if (expect !== 'image' && expect !== 'tabular' && expect !== 'any') throw new DataError(`dataset spec: expect must be image, tabular or any, got '${String(expect)}'`);
  const d = loadAny(spec);
  if (expect === 'image' && d.kind !== 'image') throw new DataError(`${d.source}: this is a table (CSV), but an image dataset is needed here`);
  if (expect === 'tabular' && d.kind !== 'tabular') throw new DataError(`${d.source}: this is an image dataset, but a CSV table is needed here`);
  return d;
}

/** @deprecated Use `loadDataset({ ...spec, expect: 'any' })`. */
export function loadAnyDataset(spec: DatasetSpec): Dataset {
  return loadDataset({ ...spec, expect: 'any' });
}

/** @deprecated Use `loadDataset({ ...spec, expect: 'tabular' })`. */
export function loadTabularDataset(spec: DatasetSpec): TabularDataset {
  return loadDataset({ ...spec, expect: 'tabular' });
}

/** @deprecated Use `loadDataset(resolveDataFlag(data, dataPath))` (no command calls this any more). */
export function loadDataFlag(data: string, dataPath?: string): ImageDataset {
  return loadDataset({ ...resolveDataFlag(data, dataPath), expect: 'image' });
}

/**
 * A fact about the data that a run folder may release, in the shape of the run manifest's
 * `privacy.released` entries (runs/manifest.ts `ReleasedFact`, minus `where`, which only the
 * runner knows).
 */
export interface DisclosedFact {
  what: string;
  status: 'public-by-assumption' | 'outside-guarantee';
  why: string;
}

const SOURCE_WHY = {
  builtin: 'fixed by the built-in dataset (public)',
  declared: 'declared by the user as public input',
  'folder-names': 'the class subfolder names of the PNG folder (the data owner\'s layout, treated as public; declare classNames to make it explicit)',
  'derived-from-data': 'derived from the private records; not covered by the DP guarantee',
} as const;

/**
 * The facts about the data a runner must list in the manifest's `privacy.released` when it writes
 * them (class count, class names, CSV schema and encoding statistics), each with its status.
 * A dataset without `disclosure` (built by hand) counts as derived from the data.
 */
export function disclosedFacts(d: Dataset): DisclosedFact[] {
  const disc = d.disclosure ?? { numClasses: 'derived-from-data', ...(d.classNames ? { classNames: 'derived-from-data' as const } : {}) };
  const status = (s: keyof typeof SOURCE_WHY) => (s === 'derived-from-data' ? 'outside-guarantee' : 'public-by-assumption') as DisclosedFact['status'];
  const facts: DisclosedFact[] = [{ what: `class count (${d.numClasses})`, status: status(disc.numClasses), why: SOURCE_WHY[disc.numClasses] }];
  if (d.classNames && disc.classNames) facts.push({ what: `class names (${d.classNames.join(', ')})`, status: status(disc.classNames), why: SOURCE_WHY[disc.classNames] });
  if (d.kind === 'tabular') {
    const schema = disc.schema ?? 'derived-from-data';
    facts.push({ what: `CSV schema (label column '${d.labelColumn}'; column kinds ${d.columns.map((c) => `${c.name}: ${c.kind}`).join(', ')})`, status: status(schema), why: SOURCE_WHY[schema] });
    for (const s of disc.statistics ?? []) {
      if (s.column === d.labelColumn && disc.classNames === 'derived-from-data') continue; // already listed as the class names
      facts.push({ what: `CSV encoding of '${s.column}': ${s.what}`, status: 'outside-guarantee', why: `only if written (publicColumns() leaves it out); reveals ${s.reveals}` });
    }
  }
  return facts;
}

/**
 * The part of a CSV encoding that may go into released files by default: names, kinds, offsets
 * and widths, plus declared (public) ranges and categories. Data-derived means, stds and category
 * lists are left out (a single-occurrence category would otherwise be written verbatim); the
 * one-hot widths stay (the model's input size shows them anyway) and disclosedFacts() lists them.
 */
export function publicColumns(d: TabularDataset): PublicColumn[] {
  return d.columns.map((c): PublicColumn => (c.declared ? { ...c } : { name: c.name, kind: c.kind, offset: c.offset, width: c.width }));
}

/** A column encoding as released: data-derived statistics removed (see publicColumns). */
export type PublicColumn = ColumnEncoding | { name: string; kind: ColumnEncoding['kind']; offset: number; width: number };
