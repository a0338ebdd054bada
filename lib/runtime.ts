/**
 * Wiring of the use cases from validated configuration: the one place where adapters are built.
 * Lambda handlers call it once at cold start; the demo and the CLI call it with their own env.
 */

import { SQSClient } from "@aws-sdk/client-sqs";
import { lambdaFanout } from "./adapters/lambda-fanout.ts";
import { LedgerStore } from "./adapters/ledger-store.ts";
import { createMembershipStore } from "./adapters/membership-store.ts";
import { S3Objects } from "./adapters/s3-objects.ts";
import type { AggregateDeps } from "./aggregate.ts";
import { type AggregationSignal, noSignal, sqsSignal } from "./aggregate-trigger.ts";
import { type AwsClients, createAwsClients } from "./clients.ts";
import { awsSchema, fanoutSchema, ingestSchema, loadConfig, reportsSchema, storageSchema } from "./config.ts";
import { ZonedCalendar } from "./domain/dates.ts";
import { NUMBER_LOCALES } from "./domain/decimal.ts";
import type { IngestDeps } from "./ingest.ts";
import { logger } from "./logger.ts";

export interface Runtime {
  config: ReturnType<typeof loadCoreConfig>;
  clients: AwsClients;
  ingest: IngestDeps;
  aggregate: AggregateDeps;
  membershipStore: ReturnType<typeof createMembershipStore>;
  /** Ingest -> aggregate signal (SQS when AGGREGATE_QUEUE_URL is set). */
  aggregationSignal: AggregationSignal;
}

function loadCoreConfig(env: NodeJS.ProcessEnv) {
  return loadConfig(env, awsSchema, storageSchema, ingestSchema, reportsSchema, fanoutSchema);
}

export function createRuntime(env: NodeJS.ProcessEnv = process.env, clients?: AwsClients): Runtime {
  const config = loadCoreConfig(env);
  const aws = clients ?? createAwsClients(config);
  const objects = new S3Objects(aws.s3);
  const ledger = new LedgerStore(aws.ddb, config.TABLE_NAME);
  const membershipStore = createMembershipStore(aws.ddb, config.TABLE_NAME);
  const calendar = new ZonedCalendar(config.REPORT_TIME_ZONE);
  const now = () => new Date();
  return {
    config,
    clients: aws,
    membershipStore,
    aggregationSignal: config.AGGREGATE_QUEUE_URL
      ? sqsSignal(new SQSClient({ region: config.AWS_REGION }), config.AGGREGATE_QUEUE_URL, logger)
      : noSignal,
    ingest: {
      objects,
      ledger,
      now,
      log: logger,
      settings: {
        stagingBucket: config.EXPORTS_BUCKET,
        partitions: config.STAGING_PARTITIONS,
        calendar,
        columnMap: config.COLUMN_MAP,
        maxFieldBytes: config.MAX_FIELD_BYTES,
        maxRecordBytes: config.MAX_RECORD_BYTES,
        numberLocale: config.NUMBER_LOCALE === "none" ? undefined : NUMBER_LOCALES[config.NUMBER_LOCALE],
        tmpDir: env.STAGING_TMP_DIR,
      },
    },
    aggregate: {
      objects,
      ledger,
      membership: membershipStore,
      now,
      log: logger,
      settings: {
        stagingBucket: config.EXPORTS_BUCKET,
        reportsBucket: config.REPORTS_BUCKET,
        partitions: config.STAGING_PARTITIONS,
        calendar,
        retentionDays: config.REPORT_RETENTION_DAYS,
        maxRowsPerPass: config.AGGREGATE_MAX_ROWS_PER_PASS,
      },
      ...(config.AGGREGATE_FANOUT === "lambda"
        ? {
            fanout: lambdaFanout({
              lambda: aws.lambda,
              functionName: config.AGGREGATE_PART_FUNCTION ?? "",
              objects,
              bucket: config.EXPORTS_BUCKET,
              minRows: config.AGGREGATE_FANOUT_MIN_ROWS,
              concurrency: config.AGGREGATE_FANOUT_CONCURRENCY,
              now,
            }),
          }
        : {}),
    },
  };
}
