import { existsSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { loadCsvDataset, type ColumnKind } from './csv.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from './fashion.js';
import { isIdxFolder, loadIdxFolder, loadMnist } from './mnist.js';
import { loadNpzDataset, loadPneumonia } from './npz-dataset.js';
import { isPngFolder, loadPngFolder } from './png-folder.js';
import { DataError, type Dataset, type ImageDataset, type TabularDataset } from './types.js';

/** Built-in dataset names accepted by `--data`. */
export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist', 'pneumonia'] as const;
export type BuiltinDataset = (typeof BUILTIN_DATASETS)[number];

export type DataFormat = 'idx' | 'npz' | 'png-folder' | 'csv';

/** What to load. Either a built-in `name` (optionally relocated by `path`) or a `path`. */
export interface DatasetSpec {
  name?: string;
  /** File or folder; for a built-in name it overrides where that set is read from. */
  path?: string;
  /** Default: from the path (.npz → npz, .csv/.tsv → csv, folder with idx files → idx, folder of class subfolders → png-folder). */
  format?: DataFormat;
  /** Class count for npz/idx sets (default max training label + 1). */
  numClasses?: number;
  // CSV only:
  labelColumn?: string;
  columns?: Record<string, ColumnKind>;
  delimiter?: string;
  testPath?: string;
  testEvery?: number;
}

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
export function resolveDataFlag(data: string, dataPath?: string): DatasetSpec {
  const d = data.trim();
  if (d === '') throw new DataError('--data: empty value (use mnist, fashion-mnist, pneumonia or a path)');
  const lower = d.toLowerCase();
  const alias: Record<string, BuiltinDataset> = { mnist: 'mnist', 'fashion-mnist': 'fashion-mnist', fashion: 'fashion-mnist', fashion_mnist: 'fashion-mnist', pneumonia: 'pneumonia', pneumoniamnist: 'pneumonia' };
  const builtin = alias[lower];
  // Built-in names win over a same-named file or folder in the cwd; write ./mnist to mean a path.
  if (builtin) {
    if (dataPath !== undefined && !existsSync(dataPath)) throw new DataError(`${dataPath}: --data-path does not exist`);
    return dataPath !== undefined ? { name: builtin, path: resolve(dataPath) } : { name: builtin };
  }
  if (dataPath !== undefined && resolve(dataPath) !== resolve(d)) {
    throw new DataError(`--data ${d} is a path; --data-path ${dataPath} only applies to the built-in sets (${BUILTIN_DATASETS.join(', ')})`);
  }
  if (!existsSync(d)) throw new DataError(`${d}: --data is neither a built-in dataset (${BUILTIN_DATASETS.join(', ')}) nor an existing file or folder`);
  return { path: resolve(d) };
}

/** Format a path will be read as. */
export function detectFormat(path: string): DataFormat {
  if (!existsSync(path)) throw new DataError(`${path}: no such file or folder`);
  if (statSync(path).isDirectory()) {
    if (isIdxFolder(path)) return 'idx';
    if (isPngFolder(path)) return 'png-folder';
    throw new DataError(`${path}: folder holds neither idx files (train-images-idx3-ubyte, …) nor class subfolders of .png images`);
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.npz') return 'npz';
  if (ext === '.csv' || ext === '.tsv' || ext === '.txt') return 'csv';
  throw new DataError(`${path}: unrecognised data file type '${ext}' (expected .npz or .csv, or a folder)`);
}

/** Loads any supported dataset: images (ImageDataset) or a table (TabularDataset). */
export function loadAnyDataset(spec: DatasetSpec): Dataset {
  if (spec.name !== undefined && (BUILTIN_DATASETS as readonly string[]).includes(spec.name)) {
    const name = spec.name as BuiltinDataset;
    if (name === 'pneumonia') return loadPneumonia(spec.path);
    if (spec.path !== undefined) {
      const named = loadAnyDataset({ ...spec, name: undefined, ...(spec.numClasses === undefined ? { numClasses: 10 } : {}) });
      if (named.kind !== 'image' || named.numClasses !== 10) return { ...named, name };
      // A relocated copy of a built-in set keeps that set's class names.
      const classNames = name === 'mnist' ? ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] : [...FASHION_MNIST_CLASSES];
      return { ...named, name, classNames };
    }
    return name === 'mnist' ? loadMnist() : loadFashionMnist();
  }
  if (spec.path === undefined) {
    throw new DataError(`dataset spec: unknown dataset name '${spec.name ?? ''}' and no path (built-in: ${BUILTIN_DATASETS.join(', ')})`);
  }
  const path = spec.path;
  const format = spec.format ?? detectFormat(path);
  const nameOpt = spec.name !== undefined ? { name: spec.name } : {};
  switch (format) {
    case 'npz':
      return loadNpzDataset(path, { ...nameOpt, ...(spec.numClasses !== undefined ? { numClasses: spec.numClasses } : {}) });
    case 'idx':
      return loadIdxFolder(path, spec.name, spec.numClasses);
    case 'png-folder':
      return loadPngFolder(path, nameOpt);
    case 'csv': {
      const delimiter = spec.delimiter ?? (extname(path).toLowerCase() === '.tsv' ? '\t' : undefined);
      return loadCsvDataset(path, {
        ...nameOpt,
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

/** Loads an image dataset (every built-in set, npz, idx and PNG folders); a CSV is an error here. */
export function loadDataset(spec: DatasetSpec): ImageDataset {
  const d = loadAnyDataset(spec);
  if (d.kind !== 'image') throw new DataError(`${d.source}: this is a table (CSV), but an image dataset is needed here`);
  return d;
}

/** Loads a CSV table as a TabularDataset. */
export function loadTabularDataset(spec: DatasetSpec): TabularDataset {
  const d = loadAnyDataset(spec);
  if (d.kind !== 'tabular') throw new DataError(`${d.source}: this is an image dataset, but a CSV table is needed here`);
  return d;
}

/** Shorthand for commands: `loadDataset(resolveDataFlag(data, dataPath))`. */
export function loadDataFlag(data: string, dataPath?: string): ImageDataset {
  return loadDataset(resolveDataFlag(data, dataPath));
}
