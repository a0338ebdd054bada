import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { S3Objects } from "../../lib/adapters/s3-objects.ts";
import {
  canonicalGroupId,
  discoverFromMembershipCsvs,
  membershipCsvColumns,
  readMembershipCsv,
} from "../../lib/membership-csv.ts";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/membership/${name}`, import.meta.url));

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

describe("membership CSV columns", () => {
  it("finds the group, user and role columns under their header variants", () => {
    expect(membershipCsvColumns(["Group Id", "User Id", "Role"])).toEqual({ group: 0, user: 1, role: 2 });
    expect(membershipCsvColumns(["fleetUserId", "groupId", "role"])).toEqual({ group: 1, user: 0, role: 2 });
    expect(membershipCsvColumns(["user_id", "group_id"])).toEqual({ group: 1, user: 0, role: null });
    expect(membershipCsvColumns(["USER GROUP ID", "Customer ID", "Member Role"])).toEqual({
      group: 0,
      user: 1,
      role: 2,
    });
    expect(membershipCsvColumns(["UserGroup.group_id", "Users.user_id"])).toEqual({
      group: 0,
      user: 1,
      role: null,
    });
    expect(membershipCsvColumns(["Group Name", "Mobile"])).toBeNull();
  });

  it("group ids: canonical digits; null sentinels, -1, 0 and text are not ids", () => {
    expect(canonicalGroupId(" 0042 ")).toBe("42");
    expect(canonicalGroupId("9007199254740993")).toBe("9007199254740993");
    for (const bad of ["", "NULL", "\\N", "-1", "0", "12a", undefined])
      expect(canonicalGroupId(bad)).toBeNull();
  });
});

describe("readMembershipCsv", () => {
  it("reads a Member Care download with BOM and CRLF, in small chunks, counting rejected rows", async () => {
    const ids = new Set<string>();
    const r = await readMembershipCsv(chunks(fixture("member-care-display.csv"), 7), ids);
    expect(r).toEqual({ ok: true, rows: 5, rejected: 2 });
    expect([...ids]).toEqual(["4242", "7001"]);
  });

  it("reads gzip and a camelCase header; ids beyond 2^53 stay exact", async () => {
    const ids = new Set<string>(["4242"]);
    const r = await readMembershipCsv(chunks(gzipSync(fixture("member-care-camel.csv")), 5), ids);
    expect(r).toEqual({ ok: true, rows: 2, rejected: 1 });
    expect([...ids]).toEqual(["4242", "9007199254740993"]);
  });

  it("a file without a group id column is not ok and adds nothing", async () => {
    const ids = new Set<string>();
    expect(await readMembershipCsv(chunks(fixture("no-group-column.csv"), 100), ids)).toEqual({
      ok: false,
      rows: 0,
      rejected: 0,
    });
    expect(ids.size).toBe(0);
  });
});

describe("discoverFromMembershipCsvs (S3 mocked)", () => {
  const s3 = mockClient(S3Client);
  // S3Objects.get streams the body as a Node Readable, which is what the SDK gives in Node.
  const body = (b: Uint8Array) => Readable.from([Buffer.from(b)]) as never;
  beforeEach(() => s3.reset());

  it("unions every file under the prefix (all pages), skipping folders and unreadable files", async () => {
    s3.on(ListObjectsV2Command, { Prefix: "membership/" })
      .resolvesOnce({
        Contents: [
          { Key: "membership/", Size: 0 },
          { Key: "membership/north.csv", Size: 10 },
        ],
        IsTruncated: true,
        NextContinuationToken: "t",
      })
      .resolves({
        Contents: [
          { Key: "membership/south.csv.gz", Size: 10 },
          { Key: "membership/notes.csv", Size: 10 },
          { Key: "membership/broken.gz", Size: 10 },
        ],
      });
    s3.on(GetObjectCommand, { Key: "membership/north.csv" }).callsFake(() => ({
      Body: body(fixture("member-care-display.csv")),
    }));
    s3.on(GetObjectCommand, { Key: "membership/south.csv.gz" }).callsFake(() => ({
      Body: body(gzipSync(fixture("member-care-camel.csv"))),
    }));
    s3.on(GetObjectCommand, { Key: "membership/notes.csv" }).callsFake(() => ({
      Body: body(fixture("no-group-column.csv")),
    }));
    s3.on(GetObjectCommand, { Key: "membership/broken.gz" }).callsFake(() => ({
      Body: body(Uint8Array.from([0x1f, 0x8b, 1, 2, 3, 4])),
    }));
    const r = await discoverFromMembershipCsvs(new S3Objects(new S3Client({})), "exports", "membership/");
    expect(r).toEqual({
      groupIds: ["4242", "7001", "9007199254740993"],
      files: 4,
      filesSkipped: 2,
      rows: 7,
      rowsRejected: 3,
    });
  });
});
