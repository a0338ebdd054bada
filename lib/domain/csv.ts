import { Buffer, isAscii, isUtf8 } from "node:buffer";

/**
 * Streaming RFC 4180 CSV parser, free of I/O: bytes in through `push`, records out through a sink.
 *
 * How it is fast: each chunk is decoded to a string once (latin1 when the chunk is ASCII, which
 * `isAscii` checks with SIMD), then delimiters are found with `String#indexOf`, whose results are
 * cached per delimiter kind so each is searched about once per field or record, and fields are cut
 * with `slice`. UTF-8 is validated per chunk (`isUtf8`); only a chunk that fails is decoded by hand,
 * which records where the invalid bytes are so that just the records holding them are rejected.
 *
 * A record that is not complete at the end of a chunk is kept as text; later chunks are only scanned
 * (not joined) until the record's end arrives, so a record spread over many small chunks costs time
 * linear in its size. Once it exceeds `maxRecordBytes` the text is dropped and the rest of the record
 * is skipped by the scanner: memory stays bounded by the limit plus one chunk.
 *
 * Grammar: a record ends at LF, CRLF or a lone CR outside quotes (the old Mac convention; RFC 4180
 * wants CR and LF inside fields quoted anyway). A quote opens a quoted field only at the start of a
 * field; inside one, `""` is a quote and a newline is data. A quote elsewhere in an unquoted field, or
 * text between a closing quote and the next comma, makes the record a BAD_QUOTE error; the record
 * still ends at the next record end outside quotes. Empty lines are not records. Physical lines are
 * counted as LF, CRLF or lone CR, also inside quoted fields.
 *
 * Note: fields of 13 characters or more may be V8 sliced strings that keep their chunk's text
 * (about 64 KiB) alive. A caller that retains a few long fields from many chunks should copy them.
 */

export type CsvErrorCode =
  | "INVALID_UTF8"
  | "UNTERMINATED_QUOTE"
  | "BAD_QUOTE"
  | "FIELD_TOO_LARGE"
  | "RECORD_TOO_LARGE";

const MESSAGES: Record<CsvErrorCode, string> = {
  INVALID_UTF8: "invalid UTF-8 bytes",
  UNTERMINATED_QUOTE: "quoted field not closed before the end of the file",
  BAD_QUOTE: "quote inside an unquoted field or text after a closing quote",
  FIELD_TOO_LARGE: "field larger than the configured limit",
  RECORD_TOO_LARGE: "record larger than the configured limit",
};

export class CsvError extends Error {
  readonly code: CsvErrorCode;
  /** 1-based physical line where the record starts. */
  readonly line: number;
  /** 1-based index of the field at fault (1 for RECORD_TOO_LARGE, which concerns the whole record). */
  readonly column: number;

  constructor(code: CsvErrorCode, line: number, column: number) {
    super(`${MESSAGES[code]} (line ${line}, field ${column})`);
    this.name = "CsvError";
    this.code = code;
    this.line = line;
    this.column = column;
  }
}

export interface CsvSink {
  /** One record; `fields` is a fresh array each time; `line` = 1-based physical line where the record starts. */
  record(fields: string[], line: number): void;
  /** A record that could not be parsed; `raw` = its text (decoded leniently, truncated to maxRecordBytes). */
  error(err: CsvError, raw: string): void;
}

export interface CsvParserOptions {
  maxFieldBytes: number;
  maxRecordBytes: number;
}

const LF = 10;
const CR = 13;
const QUOTE = 34;
const COMMA = 44;
/** "Not found": larger than any string index, and still a small integer for V8. */
const NONE = 0x3fffffff;
const EMPTY_BAD: readonly number[] = [];

/** Text decoded from bytes, with the indexes of U+FFFD characters that stand for invalid bytes. */
interface Decoded {
  text: string;
  bad: readonly number[];
}

/** Length of the UTF-8 sequence a lead byte announces (1 for ASCII and for bytes that cannot lead). */
function sequenceLength(b: number): number {
  if (b >= 0xf0) return b <= 0xf4 ? 4 : 1;
  if (b >= 0xe0) return 3;
  if (b >= 0xc2) return 2;
  return 1;
}

/**
 * Decodes a byte stream chunk by chunk; a character split over two chunks is carried over. Invalid
 * bytes become U+FFFD, and their positions are reported so the parser can reject those records.
 */
class Utf8ChunkDecoder {
  private carry: Buffer = Buffer.alloc(0);

  decode(chunk: Uint8Array): Decoded {
    let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.carry.length > 0) {
      bytes = Buffer.concat([this.carry, bytes]);
      this.carry = Buffer.alloc(0);
    }
    const cut = completeLength(bytes);
    if (cut < bytes.length) {
      this.carry = Buffer.from(bytes.subarray(cut));
      bytes = bytes.subarray(0, cut);
    }
    return decodeComplete(bytes);
  }

  /** Bytes of an unfinished character at the end of the input: invalid. */
  flush(): Decoded {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    return decodeComplete(rest);
  }
}

/** Length of the prefix of `bytes` that does not end inside a (possibly valid) multi-byte sequence. */
function completeLength(bytes: Buffer): number {
  const n = bytes.length;
  if (n === 0 || (bytes[n - 1] ?? 0) < 0x80) return n;
  const stop = Math.max(0, n - 4);
  for (let i = n - 1; i >= stop; i--) {
    const b = bytes[i] ?? 0;
    if ((b & 0xc0) !== 0x80) return n - i < sequenceLength(b) ? i : n;
  }
  return n;
}

function decodeComplete(bytes: Buffer): Decoded {
  if (bytes.length === 0) return { text: "", bad: EMPTY_BAD };
  if (isAscii(bytes)) return { text: bytes.toString("latin1", 0, bytes.length), bad: EMPTY_BAD };
  if (isUtf8(bytes)) return { text: bytes.toString("utf8", 0, bytes.length), bad: EMPTY_BAD };
  return decodeLeniently(bytes);
}

/** Length of the valid UTF-8 sequence at `i`, or minus the length of the maximal invalid subpart there. */
function validSequenceAt(bytes: Buffer, i: number): number {
  const b0 = bytes[i] ?? 0;
  if (b0 < 0x80) return 1;
  const need = sequenceLength(b0);
  if (need === 1) return -1;
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 === 0xe0) lo = 0xa0;
  else if (b0 === 0xed) hi = 0x9f;
  else if (b0 === 0xf0) lo = 0x90;
  else if (b0 === 0xf4) hi = 0x8f;
  for (let k = 1; k < need; k++) {
    const b = bytes[i + k];
    if (b === undefined || b < lo || b > hi) return -k;
    lo = 0x80;
    hi = 0xbf;
  }
  return need;
}

/** Slow path for a chunk with invalid bytes: each maximal invalid subpart becomes one U+FFFD. */
function decodeLeniently(bytes: Buffer): Decoded {
  const parts: string[] = [];
  const bad: number[] = [];
  let length = 0;
  let runStart = 0;
  let i = 0;
  while (i < bytes.length) {
    const n = validSequenceAt(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > runStart) {
      const run = bytes.toString("utf8", runStart, i);
      parts.push(run);
      length += run.length;
    }
    bad.push(length);
    parts.push("\uFFFD");
    length += 1;
    i -= n;
    runStart = i;
  }
  if (runStart < bytes.length) parts.push(bytes.toString("utf8", runStart, bytes.length));
  return { text: parts.join(""), bad };
}

/** True if `s` takes more than `max` bytes in UTF-8 (cheap unless the answer depends on the characters). */
function overBytes(s: string, max: number): boolean {
  if (s.length > max) return true;
  if (s.length * 3 <= max) return false;
  return Buffer.byteLength(s, "utf8") > max;
}

/** The longest prefix of `s` that takes at most `max` bytes in UTF-8, cut at a character boundary. */
function truncateUtf8(s: string, max: number): string {
  const head = s.length > max ? s.slice(0, max) : s;
  if (head.length * 3 <= max || Buffer.byteLength(head, "utf8") <= max) return head;
  const bytes = Buffer.from(head, "utf8");
  let cut = max;
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return bytes.toString("utf8", 0, cut);
}

/** Physical lines in text[from, to): LF, CRLF and lone CR each count once. */
function countLines(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) n++;
    else if (c === CR && text.charCodeAt(i + 1) !== LF) n++;
  }
  return n;
}

const AT_FIELD_START = 0;
const OUTSIDE_QUOTES = 1;
const IN_QUOTES = 2;
const QUOTE_IN_QUOTES = 3;

/**
 * Follows the grammar over a record that arrives in pieces, without keeping its text: where it ends,
 * how many physical lines it spans, and which field it is in. Must agree with `CsvParser.parse`.
 */
class RecordScanner {
  state = AT_FIELD_START;
  lines = 0;
  column = 1;
  private prevCR = false;

  reset(): void {
    this.state = AT_FIELD_START;
    this.lines = 0;
    this.column = 1;
    this.prevCR = false;
  }

  get inQuotes(): boolean {
    return this.state === IN_QUOTES;
  }

  /** Index of the CR or LF that ends the record, or -1 if `text` ends first. Jumps with `indexOf`. */
  scan(text: string, from: number): number {
    const len = text.length;
    let state = this.state;
    let nComma = -1;
    let nLF = -1;
    let nCR = -1;
    let nQuote = -1;
    let i = from;
    while (i < len) {
      if (state === IN_QUOTES) {
        if (nQuote < i) {
          nQuote = text.indexOf('"', i);
          if (nQuote < 0) nQuote = NONE;
        }
        const stop = nQuote === NONE ? len : nQuote;
        if (nLF < i) {
          nLF = text.indexOf("\n", i);
          if (nLF < 0) nLF = NONE;
        }
        if (nCR < i) {
          nCR = text.indexOf("\r", i);
          if (nCR < 0) nCR = NONE;
        }
        if (nLF < stop || nCR < stop) this.countQuotedLines(text, i, stop);
        if (stop === len) {
          this.prevCR = text.charCodeAt(len - 1) === CR;
          break;
        }
        state = QUOTE_IN_QUOTES;
        this.prevCR = false;
        i = stop + 1;
        continue;
      }
      const c = text.charCodeAt(i);
      if (c === QUOTE && (state === QUOTE_IN_QUOTES || state === AT_FIELD_START)) {
        state = IN_QUOTES;
        this.prevCR = false;
        i++;
        continue;
      }
      // Outside quotes: only commas and line ends matter until the record ends.
      if (nComma < i) {
        nComma = text.indexOf(",", i);
        if (nComma < 0) nComma = NONE;
      }
      if (nLF < i) {
        nLF = text.indexOf("\n", i);
        if (nLF < 0) nLF = NONE;
      }
      if (nCR < i) {
        nCR = text.indexOf("\r", i);
        if (nCR < 0) nCR = NONE;
      }
      const end = Math.min(nLF, nCR);
      if (nComma < end) {
        state = AT_FIELD_START;
        this.column++;
        i = nComma + 1;
        continue;
      }
      if (end !== NONE) {
        this.state = state;
        return end;
      }
      state = OUTSIDE_QUOTES;
      break;
    }
    this.state = state;
    return -1;
  }

  /** Counts line ends in quoted text[from, to); a CRLF split across texts counts once. */
  private countQuotedLines(text: string, from: number, to: number): void {
    let prevCR = this.prevCR;
    let n = 0;
    for (let i = from; i < to; i++) {
      const c = text.charCodeAt(i);
      if (c === CR || (c === LF && !prevCR)) n++;
      prevCR = c === CR;
    }
    this.lines += n;
  }
}

export class CsvParser {
  private readonly sink: CsvSink;
  private readonly maxFieldBytes: number;
  private readonly maxRecordBytes: number;
  private readonly decoder = new Utf8ChunkDecoder();
  private readonly scanner = new RecordScanner();
  private bytes = 0;
  private lines = 0;
  private atStart = true;
  private ended = false;
  /** The previous text ended with a CR record end: an LF starting the next text belongs to it. */
  private skipLF = false;
  /** An unfinished record carried across chunks (its text, and its invalid-byte indexes). */
  private pending: string[] = [];
  private pendingBad: number[] = [];
  private pendingLength = 0;
  /** Skipping the rest of a record over `maxRecordBytes`; only its first bytes are kept. */
  private skipping = false;
  private skipRaw = "";
  private skipLine = 0;

  constructor(sink: CsvSink, options: CsvParserOptions) {
    this.sink = sink;
    this.maxFieldBytes = Math.max(0, Math.floor(options.maxFieldBytes));
    this.maxRecordBytes = Math.max(0, Math.floor(options.maxRecordBytes));
  }

  /** Bytes pushed so far. */
  get bytesRead(): number {
    return this.bytes;
  }

  /** Physical lines consumed so far (after `end`, all lines of the input, a last unterminated one included). */
  get linesRead(): number {
    return this.lines;
  }

  push(chunk: Uint8Array): void {
    if (this.ended) throw new TypeError("CsvParser.push called after end()");
    this.bytes += chunk.byteLength;
    const { text, bad } = this.decoder.decode(chunk);
    this.feed(text, bad);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    const { text, bad } = this.decoder.flush();
    this.feed(text, bad);
    if (this.skipping) {
      this.skipping = false;
      const code = this.scanner.inQuotes ? "UNTERMINATED_QUOTE" : "RECORD_TOO_LARGE";
      this.finishSkipped(code, code === "UNTERMINATED_QUOTE" ? this.scanner.column : 1);
    } else if (this.pendingLength > 0) {
      const joined = this.takePending();
      this.parse(joined.text, joined.bad, 0, true);
    }
  }

  private feed(input: string, bad: readonly number[]): void {
    if (input.length === 0) return;
    let text = input;
    let badIdx = bad;
    if (this.atStart) {
      this.atStart = false;
      if (text.charCodeAt(0) === 0xfeff) {
        text = text.slice(1);
        badIdx = bad.map((b) => b - 1);
        if (text.length === 0) return;
      }
    }
    let start = 0;
    if (this.skipLF) {
      this.skipLF = false;
      if (text.charCodeAt(0) === LF) start = 1;
    }
    if (this.skipping) {
      const end = this.scanner.scan(text, start);
      if (end < 0) return;
      this.skipping = false;
      this.finishSkipped("RECORD_TOO_LARGE", 1);
      this.parse(text, badIdx, this.afterRecordEnd(text, end, false), false);
      return;
    }
    if (this.pendingLength > 0) {
      const end = this.scanner.scan(text, start);
      if (end < 0) {
        this.addPending(text, badIdx);
        return;
      }
      if (this.pendingLength + end > this.maxRecordBytes) {
        // Ends here, but over the limit in characters, hence in bytes: report it without joining it all.
        const head = this.takePending().text.slice(0, this.maxRecordBytes);
        this.skipRaw = head + text.slice(0, Math.max(0, Math.min(end, this.maxRecordBytes - head.length)));
        this.skipLine = this.lines + 1;
        this.finishSkipped("RECORD_TOO_LARGE", 1);
        this.parse(text, badIdx, this.afterRecordEnd(text, end, false), false);
        return;
      }
      const joined = this.takePending();
      const joinedBad = joined.bad.slice();
      for (const b of badIdx) joinedBad.push(b + joined.text.length);
      this.parse(joined.text + text, joinedBad, 0, false);
      return;
    }
    this.parse(text, badIdx, start, false);
  }

  private finishSkipped(code: CsvErrorCode, column: number): void {
    const line = this.skipLine;
    this.lines += this.scanner.lines + 1;
    const raw = truncateUtf8(this.skipRaw, this.maxRecordBytes);
    this.skipRaw = "";
    this.sink.error(new CsvError(code, line, column), raw);
  }

  /** Index after the record end (CR, LF or CRLF) at `end`. */
  private afterRecordEnd(text: string, end: number, final: boolean): number {
    if (text.charCodeAt(end) === LF) return end + 1;
    if (end + 1 < text.length) return text.charCodeAt(end + 1) === LF ? end + 2 : end + 1;
    if (!final) this.skipLF = true;
    return end + 1;
  }

  private addPending(text: string, bad: readonly number[]): void {
    for (const b of bad) this.pendingBad.push(b + this.pendingLength);
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength > this.maxRecordBytes && !this.skipping) {
      // Over the limit in characters, so over it in bytes: keep the head for the error, drop the rest.
      this.skipRaw = this.pending.join("").slice(0, this.maxRecordBytes);
      this.skipLine = this.lines + 1;
      this.skipping = true;
      this.pending = [];
      this.pendingBad = [];
      this.pendingLength = 0;
    }
  }

  private takePending(): Decoded {
    const text = this.pending.length === 1 ? (this.pending[0] ?? "") : this.pending.join("");
    const bad = this.pendingBad;
    this.pending = [];
    this.pendingBad = [];
    this.pendingLength = 0;
    return { text, bad };
  }

  /** Keeps the unfinished record text[recStart..] for the next chunk. */
  private keepTail(text: string, bad: readonly number[], recStart: number): void {
    const tail = text.slice(recStart);
    const tailBad: number[] = [];
    for (const b of bad) if (b >= recStart) tailBad.push(b - recStart);
    this.scanner.reset();
    this.scanner.scan(tail, 0);
    this.addPending(tail, tailBad);
  }

  /**
   * Parses complete records of `text` from `start`. Unless `final`, an unfinished record at the end
   * is kept for the next chunk.
   */
  private parse(text: string, bad: readonly number[], start: number, final: boolean): void {
    const len = text.length;
    const sink = this.sink;
    const maxField = this.maxFieldBytes;
    const maxRecord = this.maxRecordBytes;
    /** Fields and records up to these lengths in characters cannot exceed the byte limits. */
    const safeField = Math.floor(maxField / 3);
    const safeRecord = Math.floor(maxRecord / 3);
    let badI = 0;
    while (badI < bad.length && (bad[badI] ?? NONE) < start) badI++;
    let nextBad = bad[badI] ?? NONE;
    // Cached positions of the next delimiter of each kind; -1 means "search again".
    let nComma = -1;
    let nLF = -1;
    let nCR = -1;
    let nQuote = -1;
    let pos = start;

    while (pos < len) {
      const first = text.charCodeAt(pos);
      if (first === LF) {
        this.lines++;
        pos++;
        continue;
      }
      if (first === CR) {
        this.lines++;
        pos = this.afterRecordEnd(text, pos, final);
        continue;
      }

      const recStart = pos;

      // Fast path: a record on one line, ending in LF or CRLF, without quotes or invalid bytes, and
      // short enough that no limit can be exceeded: split at commas only.
      if (nLF < pos) {
        nLF = text.indexOf("\n", pos);
        if (nLF < 0) nLF = NONE;
      }
      if (nQuote < pos) {
        nQuote = text.indexOf('"', pos);
        if (nQuote < 0) nQuote = NONE;
      }
      if (nCR < pos) {
        nCR = text.indexOf("\r", pos);
        if (nCR < 0) nCR = NONE;
      }
      const lineEnd = nLF;
      if (
        lineEnd !== NONE &&
        nQuote > lineEnd &&
        nextBad > lineEnd &&
        lineEnd - pos <= safeField &&
        lineEnd - pos <= safeRecord &&
        (nCR > lineEnd || nCR === lineEnd - 1)
      ) {
        const end = nCR === lineEnd - 1 ? nCR : lineEnd;
        const fields: string[] = [];
        for (;;) {
          if (nComma < pos) {
            nComma = text.indexOf(",", pos);
            if (nComma < 0) nComma = NONE;
          }
          if (nComma < end) {
            fields.push(text.slice(pos, nComma));
            pos = nComma + 1;
          } else {
            fields.push(text.slice(pos, end));
            break;
          }
        }
        pos = lineEnd + 1;
        sink.record(fields, ++this.lines);
        continue;
      }

      const fields: string[] = [];
      let column = 0;
      let innerLines = 0;
      let error: CsvErrorCode | null = null;
      let errorColumn = 0;
      let badColumn = 0;
      let recEnd = len;

      for (;;) {
        column++;
        let garbage = false;
        let value = "";
        if (pos < len && text.charCodeAt(pos) === QUOTE) {
          const contentStart = pos + 1;
          let s = contentStart;
          let closed = false;
          for (;;) {
            if (nQuote < s) {
              nQuote = text.indexOf('"', s);
              if (nQuote < 0) nQuote = NONE;
            }
            const q = nQuote;
            if (q === NONE) break;
            if (q + 1 >= len) {
              if (!final) break;
              value += text.slice(s, q);
              pos = q + 1;
              closed = true;
              break;
            }
            if (text.charCodeAt(q + 1) === QUOTE) {
              value += text.slice(s, q + 1);
              s = q + 2;
              continue;
            }
            value += text.slice(s, q);
            pos = q + 1;
            closed = true;
            break;
          }
          if (!closed) {
            if (!final) {
              this.keepTail(text, bad, recStart);
              return;
            }
            // End of input inside quotes: the record runs to the end.
            innerLines += countLines(text, contentStart, len);
            error = "UNTERMINATED_QUOTE";
            errorColumn = column;
            pos = len;
            recEnd = len;
            break;
          }
          const contentEnd = pos - 1;
          if (nLF < contentStart) {
            nLF = text.indexOf("\n", contentStart);
            if (nLF < 0) nLF = NONE;
          }
          if (nCR < contentStart) {
            nCR = text.indexOf("\r", contentStart);
            if (nCR < 0) nCR = NONE;
          }
          if (nLF < contentEnd || nCR < contentEnd) innerLines += countLines(text, contentStart, contentEnd);
          if (badColumn === 0 && nextBad < contentEnd) badColumn = column;
          if (error === null && overBytes(value, maxField)) {
            error = "FIELD_TOO_LARGE";
            errorColumn = column;
          }
          if (pos >= len) {
            if (!final) {
              this.keepTail(text, bad, recStart);
              return;
            }
            fields.push(value);
            recEnd = len;
            break;
          }
          const after = text.charCodeAt(pos);
          if (after === COMMA) {
            fields.push(value);
            pos++;
            continue;
          }
          if (after === LF || after === CR) {
            fields.push(value);
            recEnd = pos;
            break;
          }
          garbage = true;
          if (error === null) {
            error = "BAD_QUOTE";
            errorColumn = column;
          }
        }

        // Unquoted field, or the text after a closing quote: runs to the next comma or record end.
        if (nComma < pos) {
          nComma = text.indexOf(",", pos);
          if (nComma < 0) nComma = NONE;
        }
        if (nLF < pos) {
          nLF = text.indexOf("\n", pos);
          if (nLF < 0) nLF = NONE;
        }
        if (nCR < pos) {
          nCR = text.indexOf("\r", pos);
          if (nCR < 0) nCR = NONE;
        }
        let e = Math.min(nComma, nLF);
        if (nCR < e) e = nCR;
        if (e === NONE) {
          if (!final) {
            this.keepTail(text, bad, recStart);
            return;
          }
          e = len;
        }
        if (!garbage) {
          if (nQuote < pos) {
            nQuote = text.indexOf('"', pos);
            if (nQuote < 0) nQuote = NONE;
          }
          if (nQuote < e && error === null) {
            error = "BAD_QUOTE";
            errorColumn = column;
          }
          if (e - pos > safeField && error === null && overBytes(text.slice(pos, e), maxField)) {
            error = "FIELD_TOO_LARGE";
            errorColumn = column;
          }
          fields.push(text.slice(pos, e));
        } else {
          fields.push(value + text.slice(pos, e));
        }
        if (badColumn === 0 && nextBad < e) badColumn = column;
        pos = e;
        if (e === nComma) {
          pos++;
          continue;
        }
        recEnd = e;
        break;
      }

      const line = this.lines + 1;
      this.lines += innerLines + 1;
      pos = recEnd < len ? this.afterRecordEnd(text, recEnd, final) : len;

      let code: CsvErrorCode | null = null;
      let codeColumn = 1;
      if (error === "UNTERMINATED_QUOTE") {
        code = error;
        codeColumn = errorColumn;
      } else if (recEnd - recStart > safeRecord && overBytes(text.slice(recStart, recEnd), maxRecord)) {
        code = "RECORD_TOO_LARGE";
      } else if (badColumn !== 0) {
        code = "INVALID_UTF8";
        codeColumn = badColumn;
      } else if (error !== null) {
        code = error;
        codeColumn = errorColumn;
      }
      while (nextBad < pos) {
        badI++;
        nextBad = bad[badI] ?? NONE;
      }
      if (code === null) sink.record(fields, line);
      else
        sink.error(
          new CsvError(code, line, codeColumn),
          truncateUtf8(text.slice(recStart, recEnd), maxRecord),
        );
    }
  }
}

/** Encodes one record as RFC 4180 CSV text (quotes only where needed), without a line end. */
export function encodeCsvRecord(fields: readonly string[]): string {
  // A lone empty field would be an empty line, which parsers skip.
  if (fields.length === 1 && fields[0] === "") return '""';
  let out = "";
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] ?? "";
    if (i > 0) out += ",";
    out += NEEDS_QUOTES.test(f) ? `"${f.replaceAll('"', '""')}"` : f;
  }
  return out;
}

/** Quote characters and line ends need quoting; so does a leading U+FEFF, which would read as a BOM. */
const NEEDS_QUOTES = /^\uFEFF|[",\r\n]/;
