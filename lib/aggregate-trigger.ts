/**
 * Ingestion -> aggregation signal. After an ingest invocation committed files, one SQS message goes to
 * AGGREGATE_QUEUE_URL; the queue delays it (DelaySeconds) and the aggregate function's event source
 * batches messages over a window, so a burst of deliveries (30 files landing together) gives one or a
 * few aggregation runs. The message only wakes the aggregation: what to do comes from the dirty marks in
 * the table (written before the signal), so a lost or duplicated message changes nothing but latency,
 * and the schedule is the backstop.
 */
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { IngestOutcome } from "./ingest.ts";
import type { Log } from "./logger.ts";

export interface AggregationSignal {
  /** Signal when any outcome committed rows; resolves to whether a message was sent. */
  afterIngest(outcomes: readonly IngestOutcome[]): Promise<boolean>;
}

export const noSignal: AggregationSignal = { afterIngest: async () => false };

export function sqsSignal(sqs: Pick<SQSClient, "send">, queueUrl: string, log: Log): AggregationSignal {
  return {
    async afterIngest(outcomes) {
      const committed = outcomes.filter((o) => o.status === "COMMITTED");
      if (committed.length === 0) return false;
      const periods = [...new Set(committed.flatMap((o) => ("periods" in o ? o.periods : [])))].sort();
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify({
            reason: "ingested",
            fileIds: committed.map((o) => o.fileId),
            periods,
          }),
        }),
      );
      log.info("aggregation signalled", { files: committed.length, periods });
      return true;
    },
  };
}
