import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeS3EventKey, parseS3Event } from "../../lib/s3-event.ts";

const event = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../fixtures/events/${name}`, import.meta.url), "utf8"));

describe("S3 events", () => {
  it("decodes keys the way S3 encodes them: + is a space, %2B a plus, UTF-8, parentheses, %25", () => {
    const keys = parseS3Event(event("encoded-keys.json")).map((r) =>
      r.kind === "object" ? r.object.key : null,
    );
    expect(keys).toEqual([
      "exports/points/Loyalty Points Export (2024)_2024-04-01-10-00-00.csv",
      "exports/points/a+b c.csv",
      "exports/members/café 会员_1711965600000.csv",
      "exports/points/Points (EU) 50%.csv",
    ]);
  });

  it("takes every ObjectCreated kind of a multi-record event and ignores the others", () => {
    const parsed = parseS3Event(event("all-kinds.json"));
    expect(parsed.map((r) => (r.kind === "object" ? r.object.key : `ignored ${r.eventName}`))).toEqual([
      "exports/points/put.csv",
      "exports/points/post.csv",
      "exports/points/copy.csv",
      "exports/points/big.csv.gz",
      "ignored ObjectRemoved:Delete",
      "staging/points/period=2024-03/part=01/x.csv.gz",
      "exports/points/",
    ]);
    const big = parsed[3];
    expect(big?.kind === "object" && big.object).toEqual({
      bucket: "glr-exports",
      key: "exports/points/big.csv.gz",
      size: 104857600,
      eTag: "d41d8cd98f00b204e9800998ecf8427e-13",
      sequencer: "04",
      eventTime: "2024-04-01T10:00:00.000Z",
    });
    // The quotes around a single-part eTag are dropped, so If-Match can be built from it.
    expect(parsed[0]?.kind === "object" && parsed[0].object.eTag).toBe("0c1f3b9c2a0d5e1f7a8b9c0d1e2f3a4b");
  });

  it("rejects a malformed event instead of guessing", () => {
    expect(() => parseS3Event({ Records: [{ eventName: "ObjectCreated:Put" }] })).toThrow();
    expect(() => parseS3Event({})).toThrow();
  });

  it("keeps a literal percent sign that is not an escape", () => {
    expect(decodeS3EventKey("exports/a+%2525.csv")).toBe("exports/a %25.csv");
    expect(decodeS3EventKey("exports/100%+off+%C3%A9.csv")).toBe("exports/100% off é.csv");
  });
});
