// The package's CSV reader (src/csv.ts, built to dist/csv.js): the one the demo's examples panel,
// the test helpers and the benchmarks use. Expected rows are written out by hand (RFC 4180).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireModel } from './helpers.mjs';

requireModel();
const { parseCsv, readExamplesCsv } = await import('../dist/csv.js');

test('quotes hold commas, line breaks and doubled quotes', () => {
  assert.deepEqual(parseCsv('a,"b, c","say ""hi""","two\nlines"\n'), [['a', 'b, c', 'say "hi"', 'two\nlines']]);
  assert.deepEqual(parseCsv('"",x'), [['', 'x']]);
});

test('a BOM is dropped; CRLF, LF and a lone CR end rows; the last line needs no break', () => {
  assert.deepEqual(parseCsv('\uFEFFid,title\r\n1,kettle\r2,mug\n3,jar'), [['id', 'title'], ['1', 'kettle'], ['2', 'mug'], ['3', 'jar']]);
  // Only a leading BOM: one inside a field is text.
  assert.deepEqual(parseCsv('a,\uFEFFb'), [['a', '\uFEFFb']]);
});

test('an empty line is no row; a line of commas is a row of empty fields', () => {
  assert.deepEqual(parseCsv('a,b\r\n\r\n\n,\nc,d\n\n'), [['a', 'b'], ['', ''], ['c', 'd']]);
  assert.deepEqual(parseCsv(''), []);
  assert.deepEqual(parseCsv('\r\n'), []);
  // A quoted empty field is a row: something was written there.
  assert.deepEqual(parseCsv('""\n'), [['']]);
});

test('readExamplesCsv: the title and category_path columns by name; rows missing either skipped', () => {
  const text = '\uFEFFcategory_path,id,title\r\nHome > Kettles,1,"Electric kettle, 1.7 l"\r\n\r\nPhones,2,\r\n,3,orphan title\r\nPhones,4,Pixel 8\r\n';
  assert.deepEqual(readExamplesCsv(text), [
    { title: 'Electric kettle, 1.7 l', path: 'Home > Kettles' },
    { title: 'Pixel 8', path: 'Phones' },
  ]);
  assert.throws(() => readExamplesCsv('id,name,path\n1,x,A\n'), (e) => e.code === 'INVALID_ARGUMENT' && /title and category_path/.test(e.message));
  assert.throws(() => readExamplesCsv(''), (e) => e.code === 'INVALID_ARGUMENT');
});
