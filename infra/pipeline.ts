/**
 * The main job on the local stack, through the three Lambda handlers exactly as deployed: groups are
 * synced by `functions/sync-groups`, exports uploaded to S3 reach `functions/ingest-export` as S3 events
 * (via the dispatcher), and `functions/aggregate-groups` publishes the reports. Used by the demo and by
 * the end-to-end integration test.
 */
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { S3Event } from "aws-lambda";
import type { PublishedReport } from "../lib/aggregate.ts";
import type { CapillarySimulator } from "./capillary-sim.ts";
import { lambdaContext, scheduledEvent } from "./lambda-context.ts";
import type { S3Dispatcher } from "./s3-dispatcher.ts";
import type { SimState } from "./sample/membership-types.ts";

export interface PipelineOptions {
  /** Full environment of the handlers: the stack's endpoints and credentials, bucket and table names, Capillary settings. */
  env: Record<string, string>;
  dispatcher: S3Dispatcher;
  /** Local simulator and the membership states to sync, in order (one sync each). Without it: one sync against the configured API. */
  capillary?: { simulator: CapillarySimulator; states: SimState[] };
  /** Files to upload, in delivery order; keys start with `exports/`. */
  uploads: { key: string; path: string }[];
  progress?: (line: string) => void;
}

export interface PipelineResult {
  uploaded: string[];
  ingestFailures: { key: string; error: string }[];
  published: PublishedReport[];
}

/** Every file under `dir`, as S3 keys relative to it (posix separators). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(relative(dir, p).split(sep).join("/"));
    }
  };
  await walk(dir);
  return out.sort();
}

export async function runPipeline(opts: PipelineOptions): Promise<PipelineResult> {
  const say = opts.progress ?? (() => undefined);
  Object.assign(process.env, opts.env);
  // Handlers read and validate their configuration at import (cold start), like in Lambda.
  const ingest = await import("../functions/ingest-export.ts");
  const sync = await import("../functions/sync-groups.ts");
  const aggregate = await import("../functions/aggregate-groups.ts");

  opts.dispatcher.setTarget(async (event: S3Event) => {
    await ingest.handler(event, lambdaContext("ingest-export"));
  });

  const states = opts.capillary?.states ?? [null];
  for (const [i, state] of states.entries()) {
    if (state && opts.capillary) opts.capillary.simulator.setState(state);
    const r = await sync.handler(scheduledEvent(), lambdaContext("sync-groups"));
    say(
      `sync ${i + 1}/${states.length}: ${r.synced} groups synced, ${r.membershipsWritten} memberships written, ${r.exitsObserved} exits observed, ${r.failed.length} failed`,
    );
  }

  const s3 = new S3Client({
    region: opts.env.AWS_REGION ?? "us-east-1",
    endpoint: opts.env.S3_ENDPOINT,
    forcePathStyle: true,
    credentials: {
      accessKeyId: opts.env.AWS_ACCESS_KEY_ID ?? "local",
      secretAccessKey: opts.env.AWS_SECRET_ACCESS_KEY ?? "local",
    },
  });
  const bucket = opts.env.EXPORTS_BUCKET;
  if (!bucket) throw new Error("EXPORTS_BUCKET is not set");
  for (const { key, path } of opts.uploads) {
    if (!key.startsWith("exports/")) throw new Error(`${key}: files to ingest must be under exports/`);
    const { size } = await stat(path);
    await new Upload({
      client: s3,
      params: { Bucket: bucket, Key: key, Body: createReadStream(path) },
    }).done();
    say(`uploaded s3://${bucket}/${key} (${size} bytes)`);
  }
  const drained = await opts.dispatcher.drain();
  say(`ingested ${drained.delivered} S3 events, ${drained.failed.length} failed`);
  s3.destroy();

  const published = await aggregate.handler({}, lambdaContext("aggregate-groups"));
  return { uploaded: opts.uploads.map((u) => u.key), ingestFailures: drained.failed, published };
}
