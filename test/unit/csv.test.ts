import { readFileSync } from "node:fs";
import { parse as csvParseSync } from "csv-parse/sync";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CsvError,
  type CsvErrorCode,
  CsvParser,
  type CsvParserOptions,
  encodeCsvRecord,
} from "../../lib/domain/csv.ts";

type Out =
  | { kind: "record"; line: number; fields: string[] }
  | { kind: "error"; line: number; code: CsvErrorCode; column: number; raw: string };

interface Result {
  out: Out[];
  linesRead: number;
  bytesRead: number;
}

const roomy: CsvParserOptions = { maxFieldBytes: 64 * 1024, maxRecordBytes: 1024 * 1024 };

function bytesOf(input: string | Uint8Array): Uint8Array {
  return typeof input === "string" ? Buffer.from(input, "utf8") : input;
}

/** Parses `input` pushed in pieces of the given sizes (cycled; empty = one push). */
function parseWith(input: string | Uint8Array, sizes: readonly number[] = [], options = roomy): Result {
  const out: Out[] = [];
  const parser = new CsvParser(
    {
      record: (fields, line) => out.push({ kind: "record", line, fields: [...fields] }),
      error: (err, raw) => {
        expect(err).toBeInstanceOf(CsvError);
        out.push({ kind: "error", line: err.line, code: err.code, column: err.column, raw });
      },
    },
    options,
  );
  const bytes = bytesOf(input);
  if (sizes.length === 0) parser.push(bytes);
  else {
    let off = 0;
    for (let i = 0; off < bytes.length; i++) {
      const n = Math.max(1, sizes[i % sizes.length] ?? 1);
      parser.push(bytes.subarray(off, off + n));
      off += n;
    }
  }
  parser.end();
  return { out, linesRead: parser.linesRead, bytesRead: parser.bytesRead };
}

const records = (r: Result) => r.out.filter((o) => o.kind === "record").map((o) => o.fields);
const errors = (r: Result) => r.out.filter((o): o is Extract<Out, { kind: "error" }> => o.kind === "error");

/** Same result whatever the chunking: one push, 1-byte pushes, and a few odd sizes. */
function parseAllWays(input: string | Uint8Array, options = roomy): Result {
  const whole = parseWith(input, [], options);
  for (const sizes of [[1], [2], [3, 1, 7], [64]]) expect(parseWith(input, sizes, options)).toEqual(whole);
  return whole;
}

describe("CsvParser: records", () => {
  it("splits fields at commas and records at LF, with or without a final newline", () => {
    const r = parseAllWays("a,b,c\n1,2,3\nx,,z");
    expect(r.out).toEqual([
      { kind: "record", line: 1, fields: ["a", "b", "c"] },
      { kind: "record", line: 2, fields: ["1", "2", "3"] },
      { kind: "record", line: 3, fields: ["x", "", "z"] },
    ]);
    expect(r.linesRead).toBe(3);
    expect(r.bytesRead).toBe(16);
  });

  it("keeps empty fields, including leading and trailing ones", () => {
    expect(records(parseAllWays(",\n,,\na,\n,b\n"))).toEqual([
      ["", ""],
      ["", "", ""],
      ["a", ""],
      ["", "b"],
    ]);
  });

  it("treats CRLF, LF and a lone CR as record ends, also when CR and LF arrive in different chunks", () => {
    const input = "a,b\r\nc,d\re,f\ng,h\r\n";
    const r = parseAllWays(input);
    expect(r.out).toEqual([
      { kind: "record", line: 1, fields: ["a", "b"] },
      { kind: "record", line: 2, fields: ["c", "d"] },
      { kind: "record", line: 3, fields: ["e", "f"] },
      { kind: "record", line: 4, fields: ["g", "h"] },
    ]);
    expect(r.linesRead).toBe(4);
    // The split is exactly between CR and LF.
    expect(parseWith(input, [4, 1, 100])).toEqual(r);
  });

  it("skips blank lines anywhere, CRLF-only lines included, but counts them as lines", () => {
    const r = parseAllWays("\n\r\na,b\n\n\r\n\rc,d\r\n\r\n\n");
    expect(r.out).toEqual([
      { kind: "record", line: 3, fields: ["a", "b"] },
      { kind: "record", line: 7, fields: ["c", "d"] },
    ]);
    expect(r.linesRead).toBe(9);
    expect(parseAllWays("\r\n\n\r").out).toEqual([]);
    expect(parseAllWays("").out).toEqual([]);
  });

  it("skips a UTF-8 BOM at the very start only, even when it arrives byte by byte", () => {
    expect(records(parseAllWays("\uFEFFid,name\n1,x\n"))).toEqual([
      ["id", "name"],
      ["1", "x"],
    ]);
    expect(records(parseAllWays("id\n\uFEFFx\n"))).toEqual([["id"], ["\uFEFFx"]]);
    expect(parseAllWays("\uFEFF").out).toEqual([]);
  });

  it("parses RFC 4180 quoting: commas, doubled quotes, line ends inside quotes, empty quoted fields", () => {
    const r = parseAllWays('"a,b","say ""hi""",""\n"multi\nline\r\nfield",x\n"",\nlast,"q"');
    expect(r.out).toEqual([
      { kind: "record", line: 1, fields: ["a,b", 'say "hi"', ""] },
      { kind: "record", line: 2, fields: ["multi\nline\r\nfield", "x"] },
      { kind: "record", line: 5, fields: ["", ""] },
      { kind: "record", line: 6, fields: ["last", "q"] },
    ]);
    expect(r.linesRead).toBe(6);
  });

  it("counts a lone CR inside quotes as a line", () => {
    const r = parseAllWays('"a\rb",c\nnext\n');
    expect(r.out).toEqual([
      { kind: "record", line: 1, fields: ["a\rb", "c"] },
      { kind: "record", line: 3, fields: ["next"] },
    ]);
  });

  it("keeps a quoted field that ends at the end of input without newline", () => {
    expect(records(parseAllWays('a,"b""'))).toEqual([]);
    expect(records(parseAllWays('a,"b"""'))).toEqual([["a", 'b"']]);
    expect(records(parseAllWays('a,"b"'))).toEqual([["a", "b"]]);
  });

  it("decodes multi-byte characters split across chunks, and keeps a genuine U+FFFD", () => {
    const input = "café,€uro,😀\n\uFFFD,ok\n";
    const r = parseAllWays(input);
    expect(records(r)).toEqual([
      ["café", "€uro", "😀"],
      ["\uFFFD", "ok"],
    ]);
  });

  it("passes each record as its own array", () => {
    const seen: string[][] = [];
    const p = new CsvParser({ record: (f) => seen.push(f), error: () => {} }, roomy);
    p.push(Buffer.from("a,b\nc,d\n"));
    p.end();
    expect(seen[0]).not.toBe(seen[1]);
    expect(seen).toEqual([
      ["a", "b"],
      ["c", "d"],
    ]);
  });

  it("reads the Points fixture (BOM, CRLF, quotes, multi-line field, non-ASCII) like csv-parse does", () => {
    const bytes = readFileSync(new URL("../fixtures/csv/points-crlf-bom.csv", import.meta.url));
    const r = parseAllWays(bytes);
    const expected = csvParseSync(bytes, { bom: true, skip_empty_lines: true }) as string[][];
    expect(records(r)).toEqual(expected);
    expect(r.out.map((o) => o.line)).toEqual([1, 2, 3, 4, 6, 8]);
    expect(records(r)[4]).toEqual(["1004", "1", "000126", "two\r\nlines", "expired"]);
    expect(records(r)[5]?.[3]).toBe("café € 😀");
    expect(r.linesRead).toBe(10);
  });

  it("rejects push after end, and end is idempotent", () => {
    const p = new CsvParser({ record: () => {}, error: () => {} }, roomy);
    p.end();
    p.end();
    expect(() => p.push(Buffer.from("a"))).toThrow(TypeError);
  });
});

describe("CsvParser: bad records", () => {
  it("reports a quote inside an unquoted field and resumes at the next record", () => {
    const r = parseAllWays('a,b"c,d\ne,f\n');
    expect(r.out).toEqual([
      { kind: "error", line: 1, code: "BAD_QUOTE", column: 2, raw: 'a,b"c,d' },
      { kind: "record", line: 2, fields: ["e", "f"] },
    ]);
  });

  it("reports text after a closing quote, and a stray quote does not open a quoted section", () => {
    const r = parseAllWays('"x"y,z\nnext"one\nok\n');
    expect(r.out).toEqual([
      { kind: "error", line: 1, code: "BAD_QUOTE", column: 1, raw: '"x"y,z' },
      { kind: "error", line: 2, code: "BAD_QUOTE", column: 1, raw: 'next"one' },
      { kind: "record", line: 3, fields: ["ok"] },
    ]);
  });

  it("a bad record still ends at a record end outside quotes, so a later quoted field may span lines", () => {
    const r = parseAllWays('a"b,"c\nd"\ne\n');
    expect(r.out).toEqual([
      { kind: "error", line: 1, code: "BAD_QUOTE", column: 1, raw: 'a"b,"c\nd"' },
      { kind: "record", line: 3, fields: ["e"] },
    ]);
  });

  it("reports an open quote at the end of input as UNTERMINATED_QUOTE, on the line where the record starts", () => {
    const r = parseAllWays('ok\nx,"never\nclosed\n');
    expect(r.out).toEqual([
      { kind: "record", line: 1, fields: ["ok"] },
      { kind: "error", line: 2, code: "UNTERMINATED_QUOTE", column: 2, raw: 'x,"never\nclosed\n' },
    ]);
    expect(r.linesRead).toBe(4);
  });

  it("rejects only the records holding invalid UTF-8, naming the field, and never substitutes silently", () => {
    const input = Buffer.concat([
      Buffer.from("good,1\nbad,caf"),
      Buffer.from([0xe9]),
      Buffer.from(",x\nsurrogate,"),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from("\noverlong,"),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from("\nstill,good\ntruncated,"),
      Buffer.from([0xe2, 0x82]),
    ]);
    const r = parseAllWays(input);
    expect(r.out).toEqual([
      { kind: "record", line: 1, fields: ["good", "1"] },
      { kind: "error", line: 2, code: "INVALID_UTF8", column: 2, raw: "bad,caf\uFFFD,x" },
      {
        kind: "error",
        line: 3,
        code: "INVALID_UTF8",
        column: 2,
        raw: expect.stringMatching(/^surrogate,\uFFFD+$/),
      },
      {
        kind: "error",
        line: 4,
        code: "INVALID_UTF8",
        column: 2,
        raw: expect.stringMatching(/^overlong,\uFFFD+$/),
      },
      { kind: "record", line: 5, fields: ["still", "good"] },
      { kind: "error", line: 6, code: "INVALID_UTF8", column: 2, raw: "truncated,\uFFFD" },
    ]);
  });

  it("finds invalid UTF-8 inside a quoted field and after a closing quote", () => {
    const input = Buffer.concat([
      Buffer.from('a,"multi\nline '),
      Buffer.from([0xff]),
      Buffer.from('"\nb\n'),
      Buffer.from([0x80]),
      Buffer.from(",c\n"),
    ]);
    const r = parseAllWays(input);
    expect(r.out.map((o) => (o.kind === "error" ? [o.line, o.code, o.column] : [o.line, o.fields]))).toEqual([
      [1, "INVALID_UTF8", 2],
      [3, ["b"]],
      [4, "INVALID_UTF8", 1],
    ]);
  });

  it("reads the bad-rows fixture: each bad record reported, good ones kept, counts add up", () => {
    const bytes = readFileSync(new URL("../fixtures/csv/bad-rows.csv", import.meta.url));
    const r = parseAllWays(bytes);
    expect(
      r.out.map((o) => (o.kind === "error" ? `${o.line}:${o.code}:${o.column}` : `${o.line}:ok`)),
    ).toEqual([
      "1:ok",
      "2:ok",
      "3:BAD_QUOTE:3",
      "4:INVALID_UTF8:3",
      "5:BAD_QUOTE:3",
      "6:ok",
      "7:UNTERMINATED_QUOTE:3",
    ]);
    expect(records(r)[2]).toEqual(["5", "50", "replacement \uFFFD is fine"]);
    expect(r.linesRead).toBe(8);
  });
});

describe("CsvParser: limits", () => {
  const small: CsvParserOptions = { maxFieldBytes: 10, maxRecordBytes: 40 };

  it("rejects a field over maxFieldBytes (counted in UTF-8 bytes) and goes on", () => {
    const r = parseAllWays('a,0123456789,"0123456789"\nb,01234567890\nc,ééééé\nd,éééééé\n', small);
    expect(
      r.out.map((o) => (o.kind === "error" ? `${o.line}:${o.code}:${o.column}` : `${o.line}:ok`)),
    ).toEqual(["1:ok", "2:FIELD_TOO_LARGE:2", "3:ok", "4:FIELD_TOO_LARGE:2"]);
  });

  it("rejects a record over maxRecordBytes, truncating its raw text, and goes on", () => {
    const long = `${"abcdefghi,".repeat(10)}end`;
    const r = parseAllWays(`${long}\nok\n`, small);
    expect(r.out).toEqual([
      { kind: "error", line: 1, code: "RECORD_TOO_LARGE", column: 1, raw: long.slice(0, 40) },
      { kind: "record", line: 2, fields: ["ok"] },
    ]);
  });

  it("truncates raw text at a character boundary within maxRecordBytes", () => {
    const r = parseAllWays(`${"€".repeat(20)}\nok\n`, { maxFieldBytes: 100, maxRecordBytes: 10 });
    expect(errors(r)).toEqual([{ kind: "error", line: 1, code: "RECORD_TOO_LARGE", column: 1, raw: "€€€" }]);
  });

  it("counts lines inside an oversized quoted record so the next record's line is right", () => {
    const big = `"${"line\n".repeat(30)}"`;
    const r = parseAllWays(`${big},x\nnext\n`, small);
    expect(r.out.map((o) => [o.line, o.kind === "error" ? o.code : o.fields])).toEqual([
      [1, "RECORD_TOO_LARGE"],
      [32, ["next"]],
    ]);
    expect(r.linesRead).toBe(32);
  });

  it("an oversized record that never closes its quote is UNTERMINATED_QUOTE", () => {
    const r = parseAllWays(`ok\n"${"z".repeat(100)}`, small);
    expect(
      r.out.map((o) => [o.line, o.kind === "error" ? `${o.code}:${o.column}:${o.raw.length}` : o.fields]),
    ).toEqual([
      [1, ["ok"]],
      [2, "UNTERMINATED_QUOTE:1:40"],
    ]);
  });

  it("keeps memory bounded while skipping a huge record that arrives in many chunks", () => {
    const chunk = Buffer.alloc(1024 * 1024, "x");
    const got: Out[] = [];
    const parser = new CsvParser(
      {
        record: (fields, line) => got.push({ kind: "record", line, fields }),
        error: (err, raw) =>
          got.push({ kind: "error", line: err.line, code: err.code, column: err.column, raw }),
      },
      { maxFieldBytes: 64 * 1024, maxRecordBytes: 256 * 1024 },
    );
    const before = process.memoryUsage().heapUsed;
    let peak = before;
    for (let i = 0; i < 200; i++) {
      parser.push(chunk);
      if (i % 20 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
    parser.push(Buffer.from("\nafter,1\n"));
    parser.end();
    // 200 MiB went through; holding it as text would take at least that much heap.
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
    expect(got.map((o) => [o.line, o.kind === "error" ? `${o.code}:${o.raw.length}` : o.fields])).toEqual([
      [1, `RECORD_TOO_LARGE:${256 * 1024}`],
      [2, ["after", "1"]],
    ]);
  });
});

describe("encodeCsvRecord", () => {
  it("quotes only where needed", () => {
    expect(encodeCsvRecord(["a", "b c", ""])).toBe("a,b c,");
    expect(encodeCsvRecord(["a,b", 'say "x"', "l1\nl2", "cr\r"])).toBe('"a,b","say ""x""","l1\nl2","cr\r"');
    expect(encodeCsvRecord([""])).toBe('""');
    expect(encodeCsvRecord(["", ""])).toBe(",");
    expect(encodeCsvRecord(["\uFEFFx", "y\uFEFF"])).toBe('"\uFEFFx",y\uFEFF');
  });
});

describe("CsvParser: properties", () => {
  const field = fc.string({ unit: "grapheme", maxLength: 12 });
  const fieldAny = fc.oneof(
    field,
    fc.constantFrom("", ",", '"', '""', "\n", "\r\n", "\r", "a,b", 'x"y', "\uFFFD", "é😀"),
  );
  const recordsArb = fc.array(fc.array(fieldAny, { minLength: 1, maxLength: 6 }), { maxLength: 12 });
  const chunking = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 });

  it("round-trips encodeCsvRecord output, whatever the chunking and line ends", () => {
    fc.assert(
      fc.property(recordsArb, chunking, fc.constantFrom("\n", "\r\n"), (recs, sizes, eol) => {
        const text = recs.map((r) => encodeCsvRecord(r) + eol).join("");
        const whole = parseWith(text);
        expect(records(whole)).toEqual(recs);
        expect(errors(whole)).toEqual([]);
        expect(parseWith(text, sizes)).toEqual(whole);
      }),
      { numRuns: 400 },
    );
  });

  // Bytes biased towards the parser's special cases: delimiters, quotes, CR/LF, BOM and UTF-8 pieces.
  const interesting = fc.constantFrom(
    0x2c,
    0x22,
    0x0a,
    0x0d,
    0x61,
    0x62,
    0xef,
    0xbb,
    0xbf,
    0xc3,
    0xa9,
    0xe2,
    0x82,
    0xac,
    0xf0,
    0x9f,
    0x98,
    0x80,
    0xff,
    0xed,
    0xa0,
  );
  const bytesArb = fc
    .array(fc.oneof(interesting, fc.integer({ min: 0, max: 255 })), { maxLength: 300 })
    .map((a) => Uint8Array.from(a));
  const limitsArb = fc.record({
    maxFieldBytes: fc.integer({ min: 0, max: 40 }),
    maxRecordBytes: fc.integer({ min: 0, max: 80 }),
  });

  it("never throws on arbitrary bytes, and the result does not depend on the chunking", () => {
    fc.assert(
      fc.property(bytesArb, chunking, fc.option(limitsArb, { nil: undefined }), (bytes, sizes, limits) => {
        const options = limits ?? roomy;
        const whole = parseWith(bytes, [], options);
        expect(parseWith(bytes, sizes, options)).toEqual(whole);
        expect(whole.bytesRead).toBe(bytes.length);
        for (const e of errors(whole)) {
          expect(Buffer.byteLength(e.raw)).toBeLessThanOrEqual(options.maxRecordBytes);
          expect(e.column).toBeGreaterThanOrEqual(1);
        }
        const lines = whole.out.map((o) => o.line);
        expect(lines).toEqual([...lines].sort((a, b) => a - b));
        if (lines.length > 0) expect(whole.linesRead).toBeGreaterThanOrEqual(lines[lines.length - 1] ?? 0);
      }),
      { numRuns: 3000 },
    );
  });

  it("agrees with csv-parse on valid CSV", () => {
    fc.assert(
      fc.property(recordsArb, (recs) => {
        const text = recs.map((r) => `${encodeCsvRecord(r)}\r\n`).join("");
        const theirs = csvParseSync(text, { relax_column_count: true, skip_empty_lines: true }) as string[][];
        expect(records(parseWith(text))).toEqual(theirs);
      }),
      { numRuns: 300 },
    );
  });
});
