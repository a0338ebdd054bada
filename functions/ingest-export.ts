import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { S3Event } from "aws-lambda";
import { EXPORTS_PREFIX, type IngestOutcome, ingestObject } from "../lib/ingest.ts";
import { logger } from "../lib/logger.ts";
import { metrics, recordIngest } from "../lib/metrics.ts";
import { createRuntime } from "../lib/runtime.ts";
import { parseS3Event } from "../lib/s3-event.ts";

// Cold start: configuration validated once, clients created once.
const runtime = createRuntime();

/**
 * S3 ObjectCreated:* on `exports/` -> ingest each object. Every record is attempted; if any failed, the
 * invocation fails afterwards so that Lambda retries it (ingestion is idempotent per object version).
 */
export async function ingestEvent(event: S3Event): Promise<IngestOutcome[]> {
  const outcomes: IngestOutcome[] = [];
  const failures: string[] = [];
  for (const rec of parseS3Event(event)) {
    if (rec.kind === "ignored") {
      logger.info("event record ignored", { eventName: rec.eventName });
      continue;
    }
    if (!rec.object.key.startsWith(EXPORTS_PREFIX)) {
      logger.error("refused: key outside the exports prefix", {
        bucket: rec.object.bucket,
        prefix: EXPORTS_PREFIX,
      });
      continue;
    }
    try {
      outcomes.push(await ingestObject(runtime.ingest, rec.object));
    } catch (e) {
      logger.error("ingestion failed", { key: rec.object.key, error: e as Error });
      failures.push(rec.object.key);
    }
  }
  recordIngest(metrics, outcomes);
  // Wake the aggregation (coalesced by the queue) for what was committed, also when some records failed.
  await runtime.aggregationSignal.afterIngest(outcomes);
  if (failures.length > 0) throw new Error(`ingestion failed for ${failures.length} of the event's objects`);
  return outcomes;
}

export const handler = middy<S3Event, IngestOutcome[]>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics, { captureColdStartMetric: true }))
  .handler(ingestEvent);
