import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import type { CapillarySimulator } from "./capillary-sim.ts";
import { startDynamoDbLocal } from "./dynamodb-local.ts";
import { type S3Dispatcher, startS3Dispatcher } from "./s3-dispatcher.ts";
import type { SimCredentials, SimState } from "./sample/membership-types.ts";

/**
 * The local stack used by `npm run stack`, the demo and the integration tests: the S3 emulator (fauxqs,
 * in-process) behind the event dispatcher, DynamoDB Local (java child process), and optionally the Capillary
 * API simulator. Everything listens on 127.0.0.1 on OS-assigned ports (DynamoDB Local cannot restrict its
 * bind address) and `stop()` leaves nothing running.
 */

export interface LocalStack {
  region: "us-east-1";
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** S3 for clients (path-style): the dispatcher, so writes under exports/ emit events. */
  s3Endpoint: string;
  /** fauxqs itself (no events). */
  s3UpstreamEndpoint: string;
  dynamoEndpoint: string;
  capillaryUrl?: string;
  capillary?: CapillarySimulator;
  dispatcher: S3Dispatcher;
  /** Milliseconds each part took to start (they start concurrently) and in total. */
  startupMs: { s3: number; dynamo: number; capillary?: number; total: number };
  /** AWS_REGION, credentials, S3_ENDPOINT, S3_FORCE_PATH_STYLE, DYNAMODB_ENDPOINT, CAPILLARY_BASE_URL. */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

/** SDK clients on a local stack's emulators: S3 (path-style) at `s3Endpoint`, and DynamoDB. */
export function stackClients(stack: { region: string; s3Endpoint: string; dynamoEndpoint: string }): {
  s3: S3Client;
  ddb: DynamoDBClient;
} {
  return {
    s3: localS3Client(stack.region, stack.s3Endpoint),
    ddb: new DynamoDBClient({
      region: stack.region,
      endpoint: stack.dynamoEndpoint,
      credentials: { ...LOCAL_CREDENTIALS },
    }),
  };
}

/** An S3 client (path-style, the local credentials) on a local endpoint: fauxqs or an event dispatcher. */
export function localS3Client(region: string, endpoint: string): S3Client {
  return new S3Client({ region, endpoint, forcePathStyle: true, credentials: { ...LOCAL_CREDENTIALS } });
}

export interface StartStackOptions {
  capillary?: { state: SimState; credentials: SimCredentials };
  /** Key prefix that emits S3 events; default `exports/`. */
  eventPrefix?: string;
}

export class StackError extends Error {
  readonly code = "STACK_START_FAILED";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StackError";
  }
}

export const LOCAL_REGION = "us-east-1";
export const LOCAL_CREDENTIALS = { accessKeyId: "local", secretAccessKey: "local" } as const;

export interface S3Emulator {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * fauxqs in-process on 127.0.0.1 with an OS-assigned port. (`startFauxqs` always binds 0.0.0.0, so this uses
 * the same `buildApp` it wraps and listens on loopback only.)
 */
export async function startS3Emulator(): Promise<S3Emulator> {
  // Loaded lazily so that startStack() can spawn java first and load fauxqs while the JVM boots.
  const { buildApp } = await import("fauxqs");
  const app = buildApp({ logger: false, defaultRegion: LOCAL_REGION });
  const address = await app.listen({ port: 0, host: "127.0.0.1" });
  const port = new URL(address).port;
  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () => {
      stopping ??= app.close().then(() => undefined);
      return stopping;
    },
  };
}

async function timed<T>(start: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await start();
  return { value, ms: Math.round(performance.now() - t0) };
}

async function startCapillary(c: NonNullable<StartStackOptions["capillary"]>): Promise<CapillarySimulator> {
  const { startCapillarySimulator } = await import("./capillary-sim.ts");
  return startCapillarySimulator({ state: c.state, credentials: c.credentials });
}

async function stopAll(parts: ({ stop(): Promise<void> } | undefined)[]): Promise<void> {
  const results = await Promise.allSettled(parts.map((p) => p?.stop()));
  const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
  if (errors.length > 0) throw new AggregateError(errors, "local stack: some parts failed to stop");
}

export async function startStack(opts: StartStackOptions = {}): Promise<LocalStack> {
  const t0 = performance.now();
  // DynamoDB Local is by far the slowest (a JVM): get it going first.
  const dynamoPart = timed(() => startDynamoDbLocal());
  const s3Part = timed(async () => {
    const emulator = await startS3Emulator();
    try {
      const dispatcher = await startS3Dispatcher({
        upstream: emulator.endpoint,
        region: LOCAL_REGION,
        ...(opts.eventPrefix !== undefined ? { prefix: opts.eventPrefix } : {}),
      });
      return { emulator, dispatcher };
    } catch (e) {
      await emulator.stop();
      throw e;
    }
  });
  const cap = opts.capillary;
  const capillaryPart = cap ? timed(() => startCapillary(cap)) : undefined;

  const [s3, dynamo, capillary] = await Promise.allSettled([s3Part, dynamoPart, capillaryPart]);
  if (s3.status === "rejected" || dynamo.status === "rejected" || capillary.status === "rejected") {
    const started = [
      s3.status === "fulfilled" ? s3.value.value.dispatcher : undefined,
      s3.status === "fulfilled" ? s3.value.value.emulator : undefined,
      dynamo.status === "fulfilled" ? dynamo.value.value : undefined,
      capillary.status === "fulfilled" ? capillary.value?.value : undefined,
    ];
    await stopAll(started).catch(() => {});
    const reasons = [s3, dynamo, capillary].flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    const first = reasons[0];
    throw new StackError(
      `local stack failed to start: ${reasons.map((r) => (r instanceof Error ? r.message : String(r))).join("; ")}`,
      { cause: first },
    );
  }

  const { emulator, dispatcher } = s3.value.value;
  const ddb = dynamo.value.value;
  const sim = capillary.value?.value;
  const startupMs = {
    s3: s3.value.ms,
    dynamo: dynamo.value.ms,
    ...(capillary.value ? { capillary: capillary.value.ms } : {}),
    total: Math.round(performance.now() - t0),
  };

  let stopping: Promise<void> | undefined;
  const stack: LocalStack = {
    region: LOCAL_REGION,
    credentials: { ...LOCAL_CREDENTIALS },
    s3Endpoint: dispatcher.endpoint,
    s3UpstreamEndpoint: emulator.endpoint,
    dynamoEndpoint: ddb.endpoint,
    ...(sim ? { capillaryUrl: sim.url, capillary: sim } : {}),
    dispatcher,
    startupMs,
    env() {
      return {
        AWS_REGION: LOCAL_REGION,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        S3_ENDPOINT: dispatcher.endpoint,
        S3_FORCE_PATH_STYLE: "true",
        DYNAMODB_ENDPOINT: ddb.endpoint,
        ...(sim ? { CAPILLARY_BASE_URL: sim.url } : {}),
      };
    },
    stop() {
      // The dispatcher first (it drains pending deliveries, which may still read S3 and DynamoDB).
      stopping ??= dispatcher.stop().then(
        () => stopAll([emulator, ddb, sim]),
        (e: unknown) => stopAll([emulator, ddb, sim]).then(() => Promise.reject(e)),
      );
      return stopping;
    },
  };
  return stack;
}
