import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { SpillDir } from "../../lib/adapters/spill.ts";

describe("spill files", () => {
  it.each([true, false])(
    "write every line exactly, whatever its size and characters (gzip %s)",
    async (gzip) => {
      const dir = await SpillDir.create();
      try {
        const f = dir.file("x", gzip);
        const lines: string[] = [];
        for (let i = 0; i < 5000; i++) {
          // short lines, multi-byte text, lines that straddle a buffer end, and lines longer than a buffer
          const line =
            i % 1000 === 999
              ? `${i},${"é会".repeat(40_000)}`
              : i % 7 === 0
                ? `${i},"café, ""quoted""",${"x".repeat(i % 300)}`
                : `${i},${"y".repeat(i % 97)}`;
          lines.push(line);
          if (!f.line(line)) await f.drain();
        }
        await f.close();
        expect(f.rows).toBe(5000);
        const bytes = await readFile(f.path);
        const text = (gzip ? gunzipSync(bytes) : bytes).toString("utf8");
        expect(text).toBe(`${lines.join("\n")}\n`);
      } finally {
        await dir.remove();
      }
    },
  );
});
