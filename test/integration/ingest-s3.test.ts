/**
 * Ingestion against the real S3 emulator and DynamoDB Local, through the deployed handler where it
 * matters: URL-encoded keys in S3 events, several records in one event, a key outside exports/, an old
 * version's late event (a real 412 on If-Match), and an object stored with Content-Encoding gzip.
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Event } from "aws-lambda";
import { beforeAll, describe, expect, it } from "vitest";
import { provision } from "../../infra/provision.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import { LedgerStore } from "../../lib/adapters/ledger-store.ts";
import type { IngestOutcome } from "../../lib/ingest.ts";
import { localClients, uniqueName } from "./helpers.ts";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/ingest/${name}`, import.meta.url));
const eventFixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/events/${name}`, import.meta.url), "utf8")) as S3Event;

describe("ingest handler on the local stack", () => {
  const { stack, s3, ddb, dynamo } = localClients();
  const names = {
    exportsBucket: uniqueName("exports"),
    reportsBucket: uniqueName("reports"),
    tableName: uniqueName("table"),
  };
  let ingestEvent: (e: S3Event) => Promise<IngestOutcome[]>;
  const ledger = new LedgerStore(ddb, names.tableName);

  const put = async (key: string, body: Uint8Array, contentEncoding?: string) => {
    const r = await s3.send(
      new PutObjectCommand({
        Bucket: names.exportsBucket,
        Key: key,
        Body: body,
        ...(contentEncoding ? { ContentEncoding: contentEncoding } : {}),
      }),
    );
    return (r.ETag ?? "").replaceAll('"', "");
  };

  /** The fixture event with this test's bucket and the real eTags and sizes of the stored objects. */
  const withObjects = (event: S3Event, objects: Map<string, { eTag: string; size: number }>): S3Event => ({
    Records: event.Records.map((r) => {
      const o = objects.get(r.s3.object.key);
      return {
        ...r,
        s3: {
          ...r.s3,
          bucket: { ...r.s3.bucket, name: names.exportsBucket },
          object: { ...r.s3.object, ...(o ? { eTag: `"${o.eTag}"`, size: o.size } : {}) },
        },
      };
    }),
  });

  beforeAll(async () => {
    await provision({ s3, ddb: dynamo }, names);
    Object.assign(process.env, {
      AWS_REGION: stack.region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      S3_ENDPOINT: stack.s3Endpoint,
      S3_FORCE_PATH_STYLE: "true",
      DYNAMODB_ENDPOINT: stack.dynamoEndpoint,
      EXPORTS_BUCKET: names.exportsBucket,
      REPORTS_BUCKET: names.reportsBucket,
      TABLE_NAME: names.tableName,
      POWERTOOLS_LOG_LEVEL: "ERROR",
    });
    ({ ingestEvent } = await import("../../functions/ingest-export.ts"));
  });

  it("ingests every record of an event with URL-encoded keys (+, %2B, UTF-8, parentheses, %25)", async () => {
    const decoded = [
      "exports/points/Loyalty Points Export (2024)_2024-04-01-10-00-00.csv",
      "exports/points/a+b c.csv",
      "exports/members/café 会员_1711965600000.csv",
      "exports/points/Points (EU) 50%.csv",
    ];
    const encoded = eventFixture("encoded-keys.json").Records.map((r) => r.s3.object.key);
    const objects = new Map<string, { eTag: string; size: number }>();
    for (const [i, key] of decoded.entries()) {
      const body = fixture(key.includes("members") ? "members.csv" : "points.csv");
      objects.set(encoded[i] ?? "", { eTag: await put(key, body), size: body.byteLength });
    }
    const out = await ingestEvent(withObjects(eventFixture("encoded-keys.json"), objects));
    expect(out.map((o) => [o.status, "rowsAccepted" in o ? o.rowsAccepted : 0])).toEqual([
      ["COMMITTED", 4],
      ["COMMITTED", 4],
      ["COMMITTED", 2],
      ["COMMITTED", 4],
    ]);
    const keys = (await ledger.list()).map((e) => e.sourceKey).sort();
    expect(keys).toEqual([...decoded].sort());
  });

  it("refuses a key outside exports/ and ignores non-created records, ingesting the rest", async () => {
    const objects = new Map<string, { eTag: string; size: number }>();
    const body = fixture("points.csv");
    for (const key of ["put.csv", "post.csv", "copy.csv"]) {
      objects.set(`exports/points/${key}`, {
        eTag: await put(`exports/points/${key}`, body),
        size: body.byteLength,
      });
    }
    const gz = gzipSync(body);
    objects.set("exports/points/big.csv.gz", {
      eTag: await put("exports/points/big.csv.gz", gz),
      size: gz.byteLength,
    });
    await put("exports/points/", new Uint8Array(0));
    const out = await ingestEvent(withObjects(eventFixture("all-kinds.json"), objects));
    expect(out.map((o) => o.status)).toEqual(["COMMITTED", "COMMITTED", "COMMITTED", "COMMITTED", "SKIPPED"]);
    expect((await ledger.list()).some((e) => e.sourceKey.startsWith("staging/"))).toBe(false);
  });

  it("treats an old version's late event (412 on If-Match) as superseded, not as a failure", async () => {
    const key = "exports/points/overwritten.csv";
    const oldBody = fixture("points-bad-rows.csv");
    const oldETag = await put(key, oldBody);
    const newBody = fixture("points.csv");
    const newETag = await put(key, newBody);
    const rec = (eTag: string, size: number, sequencer: string) => ({
      eventName: "ObjectCreated:Put",
      eventTime: new Date().toISOString(),
      s3: {
        bucket: { name: names.exportsBucket },
        object: { key: "exports/points/overwritten.csv", size, eTag, sequencer },
      },
    });
    const [fresh] = await ingestEvent({
      Records: [rec(newETag, newBody.byteLength, "10")],
    } as unknown as S3Event);
    const [late] = await ingestEvent({
      Records: [rec(oldETag, oldBody.byteLength, "09")],
    } as unknown as S3Event);
    expect(fresh?.status).toBe("COMMITTED");
    expect(late).toMatchObject({ status: "SKIPPED", reason: expect.stringContaining("superseded") });
  });

  it("reads an object stored with Content-Encoding gzip", async () => {
    const gz = gzipSync(fixture("points.csv"));
    const eTag = await put("exports/points/encoded.csv", gz, "gzip");
    const [o] = await ingestEvent({
      Records: [
        {
          eventName: "ObjectCreated:Put",
          eventTime: new Date().toISOString(),
          s3: {
            bucket: { name: names.exportsBucket },
            object: { key: "exports/points/encoded.csv", size: gz.byteLength, eTag, sequencer: "1" },
          },
        },
      ],
    } as unknown as S3Event);
    expect(o).toMatchObject({ status: "COMMITTED", rowsAccepted: 4 });
  });
});
