// The package's one CSV reader (the demo's examples file, the test helpers and benchmarks): the
// training CSV format (`id,title,category_path`, as `shelfwise adapt --examples` reads it).
import { ShelfwiseError } from './errors.js';
import type { LabelledTitle } from './types.js';

/**
 * The rows of a CSV text (RFC 4180): fields separated by commas, a field in double quotes may hold
 * commas, line breaks and `""` (one quote). A leading byte-order mark (Excel's UTF-8) is dropped;
 * CRLF, LF and a lone CR each end a row; an empty line is no row (a line of commas only is a row
 * of empty fields); a last line without a line break is a row.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  // Whether the current row has anything: a separator, a quote or a character.
  let started = false;
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      if (ch === '"' && s[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') (quoted = true), (started = true);
    else if (ch === ',') row.push(field), (field = ''), (started = true);
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && s[i + 1] === '\n') i++;
      if (started) row.push(field), rows.push(row);
      (row = []), (field = ''), (started = false);
    } else (field += ch), (started = true);
  }
  if (started) row.push(field), rows.push(row);
  return rows;
}

/**
 * Labelled titles from a CSV with a header row naming `title` and `category_path` columns (other
 * columns, such as `id`, are ignored), oldest first as `addExamples` takes them. Rows whose title
 * or path is empty are skipped. Throws `INVALID_ARGUMENT` when a column is missing.
 */
export function readExamplesCsv(text: string): LabelledTitle[] {
  const [head = [], ...rows] = parseCsv(text);
  const ti = head.indexOf('title');
  const pi = head.indexOf('category_path');
  if (ti < 0 || pi < 0) throw new ShelfwiseError('INVALID_ARGUMENT', `the CSV needs title and category_path columns (header: ${head.join(',')})`);
  return rows.filter((r) => r[ti] && r[pi]).map((r) => ({ title: r[ti]!, path: r[pi]! }));
}
