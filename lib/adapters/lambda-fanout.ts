/**
 * PartFanout over AWS Lambda: the plan is written once under aggregation-work/<run>/ in the exports
 * bucket, each part is one synchronous invocation of the aggregate-part function, which writes its
 * result next to the plan; results are read back, validated, and every work object is deleted at the end
 * (a lifecycle rule removes what a crashed run left).
 */
import { randomBytes } from "node:crypto";
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import type { PartFanout } from "../aggregate.ts";
import { getJsonGz, type PartJob, parsePartResult, putJsonGz, WORK_PREFIX } from "../aggregate-parts.ts";
import { partLabel } from "../domain/partition.ts";
import type { S3Objects } from "./s3-objects.ts";

export interface LambdaFanoutOptions {
  lambda: LambdaClient;
  functionName: string;
  objects: Pick<S3Objects, "get" | "put" | "delete">;
  bucket: string;
  minRows: number;
  concurrency: number;
  now: () => Date;
}

/** A part invocation that failed: the function's error type and message (never its stack). */
export class PartInvocationError extends Error {
  readonly code = "AGGREGATE_PART_FAILED";
  constructor(
    readonly part: number,
    detail: string,
  ) {
    super(`aggregate part ${part} failed: ${detail}`);
    this.name = "PartInvocationError";
  }
}

export function lambdaFanout(o: LambdaFanoutOptions): PartFanout {
  return {
    minRows: o.minRows,
    concurrency: o.concurrency,
    async open(plan, attribution) {
      const stamp = o
        .now()
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d+Z$/, "Z");
      const prefix = `${WORK_PREFIX}${stamp}-${randomBytes(4).toString("hex")}/`;
      const planKey = `${prefix}plan.json.gz`;
      await putJsonGz(o.objects, o.bucket, planKey, JSON.stringify(plan));
      const written = [planKey];
      let n = 0;
      return {
        async run(part, periods) {
          const resultKey = `${prefix}part=${partLabel(part)}-${++n}.json.gz`;
          written.push(resultKey);
          const job: PartJob = { bucket: o.bucket, planKey, part, periods: [...periods], resultKey };
          const r = await o.lambda.send(
            new InvokeCommand({
              FunctionName: o.functionName,
              InvocationType: "RequestResponse",
              Payload: Buffer.from(JSON.stringify(job)),
            }),
          );
          if (r.FunctionError) throw new PartInvocationError(part, errorDetail(r.FunctionError, r.Payload));
          return parsePartResult(await getJsonGz(o.objects, o.bucket, resultKey), attribution);
        },
        async close() {
          for (const key of written) await o.objects.delete(o.bucket, key);
        },
      };
    },
  };
}

function errorDetail(kind: string, payload: Uint8Array | undefined): string {
  try {
    const p = JSON.parse(Buffer.from(payload ?? new Uint8Array()).toString("utf8")) as unknown;
    if (p && typeof p === "object" && "errorMessage" in p) {
      const { errorType, errorMessage } = p as { errorType?: unknown; errorMessage?: unknown };
      return `${String(errorType ?? kind)}: ${String(errorMessage)}`;
    }
  } catch {
    // not JSON: the kind alone
  }
  return kind;
}
