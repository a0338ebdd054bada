import { randomBytes } from "node:crypto";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { inject } from "vitest";
import { localS3Client, stackClients } from "../../infra/stack.ts";
import type { StackContext } from "./stack-context.ts";

export interface LocalClients {
  stack: StackContext;
  /** fauxqs directly (path-style); for events, build a client on a dispatcher with s3ClientFor(). */
  s3: S3Client;
  ddb: DynamoDBDocumentClient;
  dynamo: DynamoDBClient;
}

export function s3ClientFor(endpoint: string, region = inject("stack").region): S3Client {
  return localS3Client(region, endpoint);
}

/** SDK clients on the emulators the global setup started. */
export function localClients(): LocalClients {
  const stack = inject("stack");
  const { s3, ddb: dynamo } = stackClients(stack);
  return {
    stack,
    s3,
    ddb: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
    dynamo,
  };
}

/** A name valid for a bucket and a table, unique per call: `<prefix>-<time>-<random>`, lowercase, <= 63. */
export function uniqueName(prefix: string): string {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "") || "t";
  const suffix = `${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
  return `${clean.slice(0, 63 - suffix.length - 1)}-${suffix}`;
}
