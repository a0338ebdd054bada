/**
 * The main job end to end (issue 2): sample exports in, group reports out, through the three Lambda
 * handlers against DynamoDB Local, the S3 emulator behind the event dispatcher and the Capillary
 * simulator. Every figure of every group and period must equal the generator's independent truth.
 */
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineResult } from "../../infra/pipeline.ts";
import type { GeneratedSample } from "../../infra/sample/generate.ts";
import { GROUP_MEMBERS_COLUMNS, publishedCell } from "../../infra/sample/truth.ts";
import { runSampleOnStack, type SampleStackRun } from "../support/sample-stack.ts";
import { localClients } from "./helpers.ts";

describe("demo pipeline equals the generator's truth", () => {
  const clients = localClients();
  const { s3 } = clients;
  let run: SampleStackRun;
  let names: SampleStackRun["names"];
  let sample: GeneratedSample;
  let result: PipelineResult;

  const report = async (key: string) => {
    const r = await s3.send(new GetObjectCommand({ Bucket: names.reportsBucket, Key: key }));
    return (await r.Body?.transformToString("utf8")) ?? "";
  };
  const reportJson = async (period: string) => {
    const rep = result.published.find((p) => p.period === period);
    const key = rep?.files.find((f) => f.key.endsWith("/group_summary.json"))?.key;
    if (!key) throw new Error(`no group_summary.json for ${period}`);
    return JSON.parse(await report(key)) as { rows: Record<string, string>[]; columns: string[] };
  };

  beforeAll(async () => {
    run = await runSampleOnStack(clients, { seed: 7, months: ["2026-09", "2026-10"] });
    ({ names, sample, result } = run);
  });

  afterAll(async () => {
    await run?.stop();
  });

  it("ingests every file through S3 events without failure", () => {
    expect(result.ingestFailures).toEqual([]);
    expect(result.uploaded).toHaveLength(sample.manifest.files.length);
    expect(result.published.map((p) => p.period)).toEqual(sample.truth.months);
  });

  it("publishes every figure of every group and period as the truth says", async () => {
    for (const period of sample.truth.months) {
      const { rows, columns } = await reportJson(period);
      const want = sample.truth.groupSummary.filter((r) => r.period === period);
      expect(columns).toEqual(Object.keys(want[0] ?? {}));
      expect(rows).toHaveLength(want.length);
      for (const [i, w] of want.entries()) expect({ i, ...rows[i] }).toEqual({ i, ...w });
    }
  });

  it("lists every group member of every period with the truth's figures, cell by cell", async () => {
    const keyOf = (r: Record<string, string | undefined>) => `${r.period}|${r.group_id}|${r.user_id}`;
    let checked = 0;
    for (const period of sample.truth.months) {
      const rep = result.published.find((p) => p.period === period);
      const key = rep?.files.find((f) => f.key.endsWith("/group_members.csv"))?.key;
      if (!key) throw new Error(`no group_members.csv for ${period}`);
      const [header, ...data]: string[][] = parse(await report(key), { bom: true });
      expect(header).toEqual([...GROUP_MEMBERS_COLUMNS]);
      const rows = data.map((r) => Object.fromEntries((header ?? []).map((h, i) => [h, r[i]])));
      const want = sample.truth.groupMembers
        .filter((r) => r.period === period)
        .map((r) => Object.fromEntries(GROUP_MEMBERS_COLUMNS.map((c) => [c, publishedCell(r[c] ?? "")])));
      expect(want.length).toBeGreaterThan(0);
      // Missing or extra members first (a readable diff), then every cell of every row, in order.
      expect(rows.map(keyOf)).toEqual(want.map(keyOf));
      for (const [i, w] of want.entries()) expect({ i, ...rows[i] }).toEqual({ i, ...w });
      checked += rows.length;
    }
    expect(checked).toBe(sample.truth.groupMembers.length);
  });

  it("reports unattributed members as the truth says", async () => {
    for (const period of sample.truth.months) {
      const rep = result.published.find((p) => p.period === period);
      const key = rep?.files.find((f) => f.key.endsWith("/unattributed_members.csv"))?.key ?? "";
      const lines = (await report(key)).trim().split("\r\n");
      const want = sample.truth.unattributed.filter((r) => r.period === period);
      expect(lines.slice(1)).toEqual(
        want.map((r) => [r.period, r.user_id, r.rows, r.points_awarded, r.points_redeemed].join(",")),
      );
    }
  });

  it("accounts for every row of every file: read = accepted + rejected (invariant 3)", async () => {
    const rep = result.published.at(-1);
    const key = rep?.files.find((f) => f.key.endsWith("/data_quality.csv"))?.key ?? "";
    const [header, ...lines] = (await report(key)).trim().split("\r\n");
    expect(header).toBe(
      "file,template,rows_read,rows_accepted,rows_rejected,first_reject_reason,file_status,error",
    );
    const got = lines.map(
      (l) => l.match(/^("(?:[^"]|"")*"|[^,]*),([^,]*),(\d+),(\d+),(\d+),/)?.slice(1, 6) ?? [],
    );
    const unquote = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replaceAll('""', '"') : s);
    const byFile = new Map(
      got.map(([f = "", t, r, a, j]) => [unquote(f), { template: t, read: r, accepted: a, rejected: j }]),
    );
    for (const w of sample.truth.dataQuality) {
      expect({ file: w.file, ...byFile.get(w.file ?? "") }).toEqual({
        file: w.file,
        template: w.template,
        read: w.rows_read,
        accepted: w.rows_accepted,
        rejected: w.rows_rejected,
      });
    }
    expect(byFile.size).toBe(sample.truth.dataQuality.length);
  });

  it("switches reports/latest/ to the newest period's run", async () => {
    const latest = JSON.parse(await report("reports/latest/manifest.json")) as {
      period: string;
      runId: string;
    };
    const newest = result.published.at(-1);
    expect(latest).toMatchObject({ period: newest?.period, runId: newest?.runId });
  });
});
