/**
 * Flag specs and readers shared by several commands, so each command declares only its own flags.
 * The declared class facts are PUBLIC INPUT (src/data DatasetSpec): with them the class list is not
 * derived from the private data, and the run folder says so.
 */
import { getInteger, getList, getStrings, type FlagSpec, type ParsedArgs } from './args.js';

/** --num-classes / --class-names: the class facts of --data, declared as public input. */
export const CLASS_FLAGS: Record<string, FlagSpec> = {
  'num-classes': { type: 'string', help: 'declared (public) number of classes of --data; without it an npz/idx/CSV class count is derived from the labels and marked as released outside the guarantee' },
  'class-names': { type: 'string', help: 'declared (public) class names of --data in class-index order, comma-separated (e.g. normal,pneumonia; CSV: the label values)' },
};

/** --categorical COL: a CSV column read as categorical (one-hot) whatever its cells look like. */
export const CATEGORICAL_FLAG: Record<string, FlagSpec> = {
  categorical: { type: 'string', repeatable: true, help: 'CSV --data: read column COL as categorical (one-hot), e.g. a numeric code or a mostly numeric column with text cells' },
};

/** The declared class facts given on the command line (only the keys that were given). */
export function declaredClasses(args: ParsedArgs): { numClasses?: number; classNames?: string[] } {
  const numClasses = getInteger(args, 'num-classes', undefined, 1);
  const classNames = getList(args, 'class-names');
  return { ...(numClasses !== undefined ? { numClasses } : {}), ...(classNames ? { classNames } : {}) };
}

/** The --categorical columns (empty when none). */
export function categoricalColumns(args: ParsedArgs): string[] {
  return getStrings(args, 'categorical').map((c) => c.trim());
}
