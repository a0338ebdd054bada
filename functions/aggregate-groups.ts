import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { z } from "zod";
import { type AggregationRequest, type PublishedReport, runAggregation } from "../lib/aggregate.ts";
import { periodRange } from "../lib/domain/periods.ts";
import { logger } from "../lib/logger.ts";
import { metrics, recordAggregation } from "../lib/metrics.ts";
import { createRuntime } from "../lib/runtime.ts";

const runtime = createRuntime();

const period = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "a period is YYYY-MM");
/**
 * A scheduled event or an SQS batch of ingestion signals (every dirty period), or an on-demand request
 * for periods or a range. Runs are serialized by the aggregation lock.
 */
export const aggregateEventSchema = z.union([
  z.object({ periods: z.array(period).min(1) }),
  z.object({ from: period, to: period }),
  z.object({}).loose(),
]);
export type AggregateEvent = z.infer<typeof aggregateEventSchema>;

/** The request an event stands for: periods named on demand, else every dirty period. */
export function requestOf(event: unknown): AggregationRequest {
  const e = aggregateEventSchema.parse(event ?? {});
  if ("periods" in e && Array.isArray(e.periods)) return { periods: e.periods };
  if ("from" in e && typeof e.from === "string" && typeof e.to === "string") {
    if (e.from > e.to) throw new RangeError(`period range is empty: ${e.from} > ${e.to}`);
    return { periods: periodRange(e.from, e.to) };
  }
  return { dirty: true };
}

export async function aggregateEvent(event: unknown, context?: Context): Promise<PublishedReport[]> {
  const request = requestOf(event);
  logger.info("aggregation requested", "periods" in request ? { periods: request.periods } : { dirty: true });
  const before = await runtime.aggregate.ledger.listPeriods();
  // Another round starts only if it fits in the invocation's time left (the schedule takes the rest).
  const outcome = await runAggregation(
    runtime.aggregate,
    request,
    context ? { remainingMs: () => context.getRemainingTimeInMillis() } : {},
  );
  const after = await runtime.aggregate.ledger.listPeriods();
  recordAggregation(metrics, before, outcome.published, after, runtime.aggregate.now());
  logger.info("aggregation finished", {
    status: outcome.status,
    rounds: outcome.rounds,
    published: outcome.published.map((p) => `${p.period}/${p.runId}`),
  });
  return outcome.published;
}

export const handler = middy<unknown, PublishedReport[]>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics, { captureColdStartMetric: true }))
  .handler(aggregateEvent);
