import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  defaultUnpackLimits,
  type ExportEntry,
  UnpackError,
  type UnpackErrorCode,
  type UnpackLimits,
  unpack,
} from "../../lib/adapters/unpack.ts";

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../fixtures/unpack/${name}`, import.meta.url));

const POINTS = fixture("points.csv").toString("utf8");
const MEMBERS = "dim_event_user_id,loyalty_points\n000123,10\n000124,-2\n";

/** A body that yields `bytes` in pieces of the given sizes, cycled. */
async function* pieces(bytes: Uint8Array, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    yield bytes.subarray(off, off + n);
    off += n;
  }
}

/** A body that yields `bytes` in pieces of `size` and records how far it was pulled and whether it was closed. */
function body(bytes: Uint8Array, size = 64 * 1024) {
  const state = { pulled: 0, closed: false };
  async function* gen(): AsyncGenerator<Uint8Array> {
    try {
      for (let off = 0; off < bytes.length; off += size) {
        state.pulled++;
        yield bytes.subarray(off, off + size);
      }
    } finally {
      state.closed = true;
    }
  }
  return { stream: gen(), state };
}

interface Got {
  name: string;
  packaging: string;
  text: string;
}

async function readAll(entries: AsyncIterable<ExportEntry>): Promise<Got[]> {
  const got: Got[] = [];
  for await (const e of entries) {
    const parts: Buffer[] = [];
    for await (const c of e.chunks) parts.push(Buffer.from(c));
    got.push({ name: e.name, packaging: e.packaging, text: Buffer.concat(parts).toString("utf8") });
  }
  return got;
}

async function unpackFixture(name: string, size?: number, limits?: UnpackLimits): Promise<Got[]> {
  return readAll(unpack(body(fixture(name), size).stream, { name, ...(limits ? { limits } : {}) }));
}

/** The UnpackError (and entries delivered before it) of unpacking `bytes`. */
async function failure(
  bytes: Uint8Array,
  name: string,
  size?: number,
  limits?: UnpackLimits,
): Promise<{ code: UnpackErrorCode; entry: string | undefined; before: string[] }> {
  const before: string[] = [];
  try {
    for await (const e of unpack(body(bytes, size).stream, { name, ...(limits ? { limits } : {}) })) {
      for await (const _ of e.chunks) {
        // drain
      }
      before.push(e.name);
    }
  } catch (e) {
    if (e instanceof UnpackError) return { code: e.code, entry: e.entry, before };
    throw e;
  }
  throw new Error(`${name}: no UnpackError`);
}

describe("unpack: packaging", () => {
  it("passes a plain CSV through as one entry named after the object", async () => {
    for (const size of [64 * 1024, 5, 1]) {
      expect(await unpackFixture("points.csv", size)).toEqual([
        { name: "points.csv", packaging: "csv", text: POINTS },
      ]);
    }
  });

  it("yields nothing for an empty body", async () => {
    expect(await readAll(unpack(body(new Uint8Array(0)).stream, { name: "x" }))).toEqual([]);
  });

  it("treats a body shorter than any magic number as CSV", async () => {
    expect(await readAll(unpack(body(Buffer.from("a")).stream, { name: "tiny" }))).toEqual([
      { name: "tiny", packaging: "csv", text: "a" },
    ]);
  });

  it("detects packaging by magic bytes, never by name", async () => {
    const zip = fixture("two-csvs.zip");
    expect(
      (await readAll(unpack(body(zip).stream, { name: "exports/points.csv" }))).map((g) => g.packaging),
    ).toEqual(["zip", "zip"]);
    const csv = await readAll(unpack(body(fixture("points.csv")).stream, { name: "looks-like.zip" }));
    expect(csv).toEqual([{ name: "looks-like.zip", packaging: "csv", text: POINTS }]);
    const gz = await readAll(unpack(body(fixture("points.csv.gz")).stream, { name: "Points_2024-03-01" }));
    expect(gz).toEqual([{ name: "Points_2024-03-01", packaging: "gzip", text: POINTS }]);
  });
});

describe("unpack: gzip", () => {
  it("expands a gzip, named without its .gz, in any chunking", async () => {
    for (const size of [64 * 1024, 7, 1]) {
      expect(await unpackFixture("points.csv.gz", size)).toEqual([
        { name: "points.csv", packaging: "gzip", text: POINTS },
      ]);
    }
  });

  it("expands every member of a multi-member gzip", async () => {
    const [got] = await unpackFixture("multi-member.csv.gz", 1);
    expect(got?.text).toBe(`${POINTS}1004,1,0,000126,20240304\n1005,2,0,000127,20240305\n`);
  });

  it("reports a truncated gzip as GZIP_CORRUPT", async () => {
    expect((await failure(fixture("truncated.csv.gz"), "t.gz")).code).toBe("GZIP_CORRUPT");
    const garbage = Buffer.concat([fixture("points.csv.gz"), Buffer.from("trailing garbage")]);
    expect((await failure(garbage, "g.gz")).code).toBe("GZIP_CORRUPT");
  });

  it("stops a gzip bomb (50 MB of zeros) by ratio and by size", async () => {
    const bomb = fixture("bomb.csv.gz");
    expect(bomb.length).toBeLessThan(100 * 1024);
    expect((await failure(bomb, "bomb.gz")).code).toBe("ZIP_BOMB");
    const tiny: UnpackLimits = { maxEntries: 10, maxUncompressedBytes: 64 * 1024, maxRatio: 1e9 };
    expect((await failure(bomb, "bomb.gz", 1024, tiny)).code).toBe("ZIP_BOMB");
  });

  it("rejects an archive inside a gzip as ZIP_NESTED", async () => {
    expect((await failure(fixture("nested.csv.gz"), "nested.csv.gz")).code).toBe("ZIP_NESTED");
  });

  it("pulls compressed bytes only as the expanded data is read", async () => {
    // Rows of pseudo-random numbers, so the gzip stays large (about 1 MB).
    let seed = 1;
    const rows: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      rows.push(`${i},${seed},${seed % 9973}`);
    }
    const big = gzipSync(Buffer.from(rows.join("\n")), { level: 1 });
    expect(big.length).toBeGreaterThan(512 * 1024);
    const b = body(big, 1024);
    const total = Math.ceil(big.length / 1024);
    const entries = unpack(b.stream, { name: "big.gz" });
    const first = await entries.next();
    expect(first.done).toBe(false);
    const it = (first.value as ExportEntry).chunks[Symbol.asyncIterator]();
    await it.next();
    expect(b.state.pulled).toBeLessThan(total / 4);
    await entries.return(undefined);
    expect(b.state.closed).toBe(true);
  });
});

describe("unpack: zip", () => {
  const expectTwo = (got: Got[], prefix: string) =>
    expect(got).toEqual([
      { name: `${prefix}points.csv`, packaging: "zip", text: POINTS },
      { name: `${prefix}members.csv`, packaging: "zip", text: MEMBERS },
    ]);

  it("yields each CSV of a zip in order, skipping the directory entry, in any chunking", async () => {
    for (const size of [64 * 1024, 13, 1]) expectTwo(await unpackFixture("two-csvs.zip", size), "exports/");
  });

  it("reads a zip from a streaming writer (data descriptors)", async () => {
    for (const size of [64 * 1024, 1]) expectTwo(await unpackFixture("streamed.zip", size), "");
  });

  it("reads data descriptors without their optional signature", async () => {
    for (const size of [64 * 1024, 3, 1])
      expectTwo(await unpackFixture("descriptor-without-signature.zip", size), "");
  });

  it("skips zero-length names, directories and __MACOSX metadata", async () => {
    expect(await unpackFixture("skipped-entries.zip", 1)).toEqual([
      { name: "exports/points.csv", packaging: "zip", text: POINTS },
    ]);
  });

  it("yields nothing for an empty zip", async () => {
    expect(await unpackFixture("empty.zip")).toEqual([]);
  });

  it("skips what the caller leaves of an entry", async () => {
    const names: string[] = [];
    for await (const e of unpack(body(fixture("two-csvs.zip"), 1).stream, { name: "z" })) names.push(e.name);
    expect(names).toEqual(["exports/points.csv", "exports/members.csv"]);
  });

  it("stops a zip bomb (50 MB of zeros) as soon as a limit is crossed", async () => {
    const bomb = fixture("bomb.zip");
    expect(bomb.length).toBeLessThan(100 * 1024);
    expect(await failure(bomb, "bomb.zip")).toEqual({ code: "ZIP_BOMB", entry: "zeros.csv", before: [] });
    const tiny: UnpackLimits = { maxEntries: 10, maxUncompressedBytes: 1024 * 1024, maxRatio: 1e9 };
    // The declared size already exceeds the limit.
    expect((await failure(bomb, "bomb.zip", 4096, tiny)).code).toBe("ZIP_BOMB");
  });

  it("counts expanded bytes as they stream, not trusting declared sizes", async () => {
    // Same bomb with the declared size in its local header zeroed: only counting can stop it.
    const bomb = Buffer.from(fixture("bomb.zip"));
    bomb.writeUInt32LE(0, 22);
    let delivered = 0;
    const tiny: UnpackLimits = { maxEntries: 10, maxUncompressedBytes: 3 * 1024 * 1024, maxRatio: 1e9 };
    const run = async () => {
      for await (const e of unpack(body(bomb, 4096).stream, { name: "b", limits: tiny })) {
        for await (const c of e.chunks) delivered += c.byteLength;
      }
    };
    await expect(run()).rejects.toMatchObject({ code: "ZIP_BOMB" });
    expect(delivered).toBeLessThanOrEqual(3 * 1024 * 1024);
  });

  it("rejects unsafe entry names", async () => {
    expect(await failure(fixture("unsafe-path.zip"), "u.zip")).toMatchObject({
      code: "ZIP_UNSAFE_PATH",
      entry: "../escape.csv",
    });
    expect(await failure(fixture("backslash-path.zip"), "b.zip", 1)).toMatchObject({
      code: "ZIP_UNSAFE_PATH",
      entry: "dir\\points.csv",
    });
  });

  it("rejects a nested archive, by name or by content", async () => {
    expect(await failure(fixture("nested.zip"), "n.zip", 1)).toEqual({
      code: "ZIP_NESTED",
      entry: "inner.zip",
      before: ["points.csv"],
    });
    expect(await failure(fixture("nested-by-content.zip"), "n.zip")).toMatchObject({
      code: "ZIP_NESTED",
      entry: "points.csv",
    });
  });

  it("rejects an encrypted entry", async () => {
    expect(await failure(fixture("encrypted.zip"), "e.zip", 1)).toMatchObject({
      code: "ZIP_ENCRYPTED",
      entry: "points.csv",
    });
  });

  it("rejects more entries than allowed", async () => {
    const limits = { ...defaultUnpackLimits, maxEntries: 10 };
    expect((await failure(fixture("many-entries.zip"), "m.zip", undefined, limits)).code).toBe(
      "TOO_MANY_ENTRIES",
    );
    expect(await unpackFixture("many-entries.zip", undefined, { ...limits, maxEntries: 12 })).toHaveLength(
      12,
    );
  });

  it("reports a truncated zip as ZIP_CORRUPT", async () => {
    for (const size of [64 * 1024, 1]) {
      expect(await failure(fixture("truncated.zip"), "t.zip", size)).toMatchObject({
        code: "ZIP_CORRUPT",
        before: ["exports/points.csv"],
      });
    }
    // Cut right after the last entry's data: everything was read, but the central directory is missing.
    const zip = fixture("two-csvs.zip");
    const central = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    expect(await failure(zip.subarray(0, central), "t.zip")).toMatchObject({
      code: "ZIP_CORRUPT",
      before: ["exports/points.csv", "exports/members.csv"],
    });
  });

  it("checks each entry against the central directory's CRC-32 and size", async () => {
    const zip = Buffer.from(fixture("two-csvs.zip"));
    const central = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    // Corrupt the CRC recorded for the first file (the directory entry comes first in the listing).
    const second = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), central + 1);
    zip.writeUInt32LE(zip.readUInt32LE(second + 16) ^ 1, second + 16);
    expect(await failure(zip, "c.zip")).toMatchObject({ code: "ZIP_CORRUPT", entry: "exports/points.csv" });
  });

  it("pulls the body only as entries are read, and closes it when the caller stops", async () => {
    const { zipSync, strToU8 } = await import("fflate");
    for (const level of [0, 6] as const) {
      const files = Object.fromEntries(
        Array.from({ length: 3 }, (_, i) => [`f${i}.csv`, strToU8(POINTS.repeat(2000))]),
      );
      const zip = zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, [v, { level }]])));
      const b = body(zip, 4096);
      const total = Math.ceil(zip.length / 4096);
      for await (const e of unpack(b.stream, { name: "z" })) {
        const it = e.chunks[Symbol.asyncIterator]();
        expect((await it.next()).done).toBe(false);
        expect(b.state.pulled).toBeLessThanOrEqual(2);
        break;
      }
      expect(b.state.pulled).toBeLessThan(total);
      expect(b.state.closed).toBe(true);
    }
  });
});

describe("unpack: the body's own errors", () => {
  it("passes a failing body's error through unchanged, for every packaging", async () => {
    for (const name of ["points.csv", "points.csv.gz", "two-csvs.zip"]) {
      const bytes = fixture(name);
      const boom = new Error("socket hang up");
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield bytes.subarray(0, 20);
        throw boom;
      }
      await expect(readAll(unpack(failing(), { name }))).rejects.toBe(boom);
    }
  });
});

describe("unpack: properties", () => {
  const chunking = fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 5 });
  const good = ["points.csv", "points.csv.gz", "multi-member.csv.gz", "two-csvs.zip", "streamed.zip"];

  it("gives the same entries whatever the chunking", async () => {
    const expected = new Map<string, Got[]>();
    for (const name of good) expected.set(name, await unpackFixture(name));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...good), chunking, async (name, sizes) => {
        expect(await readAll(unpack(pieces(fixture(name), sizes), { name }))).toEqual(expected.get(name));
      }),
      { numRuns: 150 },
    );
  });

  it("fails only with an UnpackError on damaged archives, never anything else", async () => {
    const archives = ["two-csvs.zip", "streamed.zip", "descriptor-without-signature.zip", "points.csv.gz"];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...archives),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        chunking,
        async (name, flips, cut, sizes) => {
          const bytes = Buffer.from(fixture(name));
          // Keep the magic bytes so the damage reaches the zip and gzip readers.
          for (const [at, value] of flips) bytes[4 + (at % (bytes.length - 4))] = value;
          const damaged = cut === undefined ? bytes : bytes.subarray(0, 4 + (cut % (bytes.length - 4)));
          try {
            await readAll(unpack(pieces(damaged, sizes), { name }));
          } catch (e) {
            expect(e).toBeInstanceOf(UnpackError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
