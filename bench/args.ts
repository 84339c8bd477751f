/** The value after `flag` in a benchmark's arguments (`--schedules 1000`), if given. */
export function valueOf(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}
