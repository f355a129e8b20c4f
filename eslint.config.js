import tseslint from 'typescript-eslint';

/**
 * Layer order of src/ (each folder imports only from folders of a LOWER rank; see README,
 * "Development"). Same-rank folders do not import each other either, so that every method in
 * train/, generate/ or federated/ stands on the shared floors below it.
 */
export const LAYERS = [
  ['util'],
  ['data', 'engine'],
  ['privacy'],
  ['nn'],
  ['train', 'generate'],
  // Federated protocols train models (train/) between parties; evaluate/audit may judge them.
  ['federated'],
  ['evaluate', 'audit'],
  ['runs'],
  ['report'],
  ['cli'],
];

const rank = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i])));
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** One config block per folder: imports of a folder at the same or a higher rank are errors. */
const layerBlocks = [...rank.entries()].map(([folder, r]) => {
  const forbidden = [...rank.entries()].filter(([f, rr]) => f !== folder && rr >= r).map(([f]) => f);
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': forbidden.length === 0 ? 'off' : ['error', {
        patterns: [{
          // Relative specifiers that step into a forbidden folder: '../report/html.js', '../../runs'.
          regex: `^(\\.\\.?/)+(${forbidden.map(escape).join('|')})(/|$)`,
          message: `layer violation: src/${folder}/ (layer ${r}) may only import from lower layers (${LAYERS.slice(0, r).flat().join(', ') || 'none'}); see eslint.config.js LAYERS`,
        }],
      }],
    },
  };
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'runs/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  ...layerBlocks,
  {
    // Project modules are imported statically (the type checker sees every edge); only the CLI may
    // defer loading a command's module.
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: 'ImportExpression[source.value=/^\\./]',
        message: 'no dynamic import() of project modules outside src/cli/: import statically so the type checker and the layer lint see the edge',
      }],
    },
  },
);
