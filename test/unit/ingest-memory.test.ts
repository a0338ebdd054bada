/**
 * Memory stays flat in file size: the same generated Points export at two sizes (10x apart) is ingested
 * in a child process each (the use case through its ports, reading the file as a stream), and the peak
 * RSS of the larger run must stay close to the smaller one's. A whole-file buffer (the larger input is about
 * 42 MB, several times that as strings) would push the ratio far above the bound. No wall-clock limit.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { measure } from "../../bench/ingest.ts";
import { writePointsExport } from "../../bench/ingest-data.ts";

describe("ingestion memory is flat in file size", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-mem-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("peak RSS at 300k rows stays within 1.5x of 30k rows", async () => {
    const small = join(dir, "small.csv");
    const large = join(dir, "large.csv");
    await writePointsExport(small, 30_000);
    const bytes = await writePointsExport(large, 300_000);
    expect(bytes).toBeGreaterThan(40e6);
    const a = await measure("ingest", small);
    const b = await measure("ingest", large);
    expect([a.rows, a.accepted, b.rows, b.accepted]).toEqual([30_000, 30_000, 300_000, 300_000]);
    expect(b.maxRssMB / a.maxRssMB).toBeLessThan(1.5);
  }, 300_000);
});
