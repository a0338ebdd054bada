/** Writes a generated Points export of `rows` rows to a file, streaming (memory flat in size). */

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { HEADER, pointsRow } from "./csv-parse-only.ts";

export async function writePointsExport(path: string, rows: number): Promise<number> {
  const out = createWriteStream(path);
  let bytes = 0;
  let buf = `${HEADER.join(",")}\n`;
  for (let i = 0; i < rows; i++) {
    buf += `${pointsRow(i)}\n`;
    if (buf.length > 1 << 20) {
      bytes += buf.length;
      if (!out.write(buf)) await once(out, "drain");
      buf = "";
    }
  }
  bytes += buf.length;
  out.end(buf);
  await once(out, "finish");
  return bytes;
}
