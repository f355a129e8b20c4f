/**
 * The `--key value` argument reader the bench scripts share: `const get = benchArgs();
 * get('steps', '10')` returns the value after `--steps`, or the default; `get.has('chunk')` says
 * whether the flag was given.
 */
export function benchArgs(argv: readonly string[] = process.argv): ((key: string, dflt: string) => string) & { has(key: string): boolean } {
  const args = new Map<string, string>();
  for (let i = 2; i < argv.length; i += 2) args.set(argv[i]!.replace(/^--/, ''), argv[i + 1]!);
  return Object.assign((key: string, dflt: string) => args.get(key) ?? dflt, { has: (key: string) => args.has(key) });
}
