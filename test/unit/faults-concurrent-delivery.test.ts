/**
 * Issue 8, found by the load test (two S3 events of one object version ingested at the same time, as
 * S3's at-least-once delivery allows): once a file is COMMITTED, a concurrent invocation of the same
 * version must never set it back to PROCESSING or FAILED, or an aggregation in between would publish
 * reports without the file's rows. Interleavings forced deterministically through the ledger port.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LedgerEntry } from "../../lib/adapters/ledger-store.ts";
import type { IngestLedger } from "../../lib/ingest.ts";
import { ingestObject } from "../../lib/ingest.ts";
import { IngestHarness } from "../support/ingest-harness.ts";

const CSV = Buffer.from(
  "event_id,dim_event_user_id,dim_event_date_id,allocated_points,deducted_points\n1,10,20240301,1.5,0\n2,11,20240302,2,0\n",
);

let h: IngestHarness;
beforeEach(async () => {
  h = await IngestHarness.create();
});
afterEach(async () => {
  await h.remove();
});

/** The harness's ledger, recording every status a COMMITTED entry was overwritten with. */
function watched(gate: { beforeGetReturns?: () => Promise<void> }) {
  const inner = h.ledger;
  const regressions: string[] = [];
  const seen: { second: string | null } = { second: null };
  let started: () => void = () => undefined;
  const firstStarted = new Promise<void>((r) => {
    started = r;
  });
  let gets = 0;
  const ledger: IngestLedger = {
    async get(id) {
      const r = await inner.get(id);
      gets += 1;
      if (gets === 2) {
        seen.second = r?.status ?? null;
        await gate.beforeGetReturns?.();
      }
      return r;
    },
    async put(entry: LedgerEntry, ...rest: unknown[]) {
      const cur = await inner.get(entry.fileId);
      const args = rest as Parameters<IngestLedger["put"]> extends [unknown, ...infer R] ? R : never;
      const wrote = await (inner.put as (...a: unknown[]) => Promise<unknown>)(entry, ...args);
      const now = await inner.get(entry.fileId);
      if (cur?.status === "COMMITTED" && now?.status !== "COMMITTED") regressions.push(now?.status ?? "gone");
      if (entry.status === "PROCESSING") started();
      return wrote as never;
    },
    markDirty: (...a) => inner.markDirty(...a),
    listPeriods: () => inner.listPeriods(),
  };
  return { ledger, regressions, seen, firstStarted };
}

describe("two deliveries of one object version at the same time", () => {
  it("the second, which saw PROCESSING, does not set a COMMITTED file back to PROCESSING", async () => {
    const obj = await h.put("exports/points/a.csv", CSV);
    let releaseB: () => void = () => undefined;
    const bMayGoOn = new Promise<void>((r) => {
      releaseB = r;
    });
    const { ledger, regressions, seen, firstStarted } = watched({ beforeGetReturns: () => bMayGoOn });
    const deps = { objects: h.objects, ledger, settings: h.settings, now: () => new Date(), log: h.log };
    const a = ingestObject(deps, obj); // get #1: nothing yet -> PROCESSING ... COMMITTED
    await firstStarted;
    const b = ingestObject(deps, obj); // get #2 sees PROCESSING, returns only after A committed
    const ra = await a;
    releaseB();
    await b;
    expect(ra.status).toBe("COMMITTED");
    expect(seen.second).toBe("PROCESSING"); // the interleaving happened
    expect(regressions).toEqual([]);
    expect((await h.ledger.get(ra.fileId))?.status).toBe("COMMITTED");
  });

  it("the second, failing after the first committed, does not record the file FAILED", async () => {
    const obj = await h.put("exports/points/b.csv", CSV);
    let aDone: () => void = () => undefined;
    const aCommitted = new Promise<void>((r) => {
      aDone = r;
    });
    const { ledger, regressions, seen, firstStarted } = watched({});
    // B's read of the body fails (a reset), after A has committed. Each delivery has its own S3 adapter,
    // so which read fails does not depend on which of the two reaches GetObject first.
    const failingObjects = {
      get: async (..._: Parameters<typeof h.objects.get>): ReturnType<typeof h.objects.get> => {
        await aCommitted;
        throw Object.assign(new Error("aborted"), { code: "ECONNRESET" });
      },
      putFile: h.objects.putFile.bind(h.objects),
    };
    const base = { ledger, settings: h.settings, now: () => new Date(), log: h.log };
    const a = ingestObject({ ...base, objects: h.objects }, obj);
    await firstStarted;
    const b = ingestObject({ ...base, objects: failingObjects }, obj);
    const ra = await a;
    aDone();
    await expect(b).rejects.toThrow(/aborted/);
    expect(ra.status).toBe("COMMITTED");
    expect(seen.second).toBe("PROCESSING"); // the interleaving happened
    expect(regressions).toEqual([]);
    expect((await h.ledger.get(ra.fileId))?.status).toBe("COMMITTED");
  });
});
