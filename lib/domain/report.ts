/**
 * Rendering of report tables: CSV (RFC 4180, UTF-8, safe to open in a spreadsheet) and JSON.
 */
import { encodeCsvRecord } from "./csv.ts";

const NUMBER = /^-?\d+(\.\d+)?$/;

/** Text cells that begin with = + - @ (numbers excepted) get a leading ' against formula injection. */
export function safeCell(v: string): string {
  if (v.length === 0) return v;
  const c = v.charCodeAt(0);
  // = + - @, and tab / CR which some spreadsheets also treat as formula starters
  if (c === 61 || c === 43 || c === 45 || c === 64 || c === 9 || c === 13) {
    return NUMBER.test(v) ? v : `'${v}`;
  }
  return v;
}

export function renderCsv<C extends string>(
  columns: readonly C[],
  rows: readonly Record<C, string>[],
): string {
  const lines = [encodeCsvRecord(columns)];
  for (const r of rows) lines.push(encodeCsvRecord(columns.map((c) => safeCell(r[c]))));
  // UTF-8 with a byte order mark: Excel otherwise reads the file in the local code page.
  return `\uFEFF${lines.join("\r\n")}\r\n`;
}

export function renderJson<C extends string>(
  meta: Record<string, unknown>,
  columns: readonly C[],
  rows: readonly Record<C, string>[],
): string {
  return `${JSON.stringify({ ...meta, columns, rows }, null, 1)}\n`;
}
