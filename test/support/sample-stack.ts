/**
 * The generated sample through the three handlers on the local stack (S3 emulator behind the event
 * dispatcher, DynamoDB Local, the Capillary simulator): fresh buckets and table, both syncs, every export
 * uploaded in delivery order, aggregation. For integration tests that then look at what it published.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import { type PipelineResult, runPipeline } from "../../infra/pipeline.ts";
import { provision } from "../../infra/provision.ts";
import { type S3Dispatcher, startS3Dispatcher } from "../../infra/s3-dispatcher.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import { type LocalClients, uniqueName } from "../integration/helpers.ts";

const credentials = { oauth: { key: "k", secret: "s" }, basic: { username: "u", password: "p" } };

export interface SampleStackRun {
  names: { exportsBucket: string; reportsBucket: string; tableName: string };
  /** The handlers' environment. */
  env: Record<string, string>;
  sample: GeneratedSample;
  /** Temp folder: the sample under sample/; free for the test's own files. */
  dir: string;
  result: PipelineResult;
  stop(): Promise<void>;
}

export async function runSampleOnStack(
  clients: Pick<LocalClients, "stack" | "s3" | "dynamo">,
  opts: { seed: number; months: string[]; env?: Record<string, string> },
): Promise<SampleStackRun> {
  const { stack } = clients;
  const names = {
    exportsBucket: uniqueName("exports"),
    reportsBucket: uniqueName("reports"),
    tableName: uniqueName("table"),
  };
  const dir = await mkdtemp(join(tmpdir(), "glr-sample-stack-"));
  let dispatcher: S3Dispatcher | undefined;
  let sim: CapillarySimulator | undefined;
  const stop = async () => {
    await dispatcher?.stop();
    await sim?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const sample = await buildSample({ outDir: join(dir, "sample"), seed: opts.seed, months: opts.months });
    const [first, second] = sample.input.syncs;
    if (!first || !second) throw new Error("the sample has two syncs");
    dispatcher = await startS3Dispatcher({ upstream: stack.s3Endpoint, region: stack.region });
    sim = await startCapillarySimulator({ state: first.state, credentials });
    await provision({ s3: clients.s3, ddb: clients.dynamo }, names);
    const env = {
      AWS_REGION: stack.region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      S3_ENDPOINT: dispatcher.endpoint,
      S3_FORCE_PATH_STYLE: "true",
      DYNAMODB_ENDPOINT: stack.dynamoEndpoint,
      EXPORTS_BUCKET: names.exportsBucket,
      REPORTS_BUCKET: names.reportsBucket,
      TABLE_NAME: names.tableName,
      CAPILLARY_BASE_URL: sim.url,
      CAPILLARY_AUTH: "oauth",
      CAPILLARY_OAUTH_KEY: credentials.oauth.key,
      CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
      CAPILLARY_GROUP_IDS: sample.manifest.groupIds.join(","),
      CAPILLARY_RATE_PER_SECOND: "500",
      POWERTOOLS_LOG_LEVEL: "ERROR",
      ...opts.env,
    };
    const result = await runPipeline({
      env,
      dispatcher,
      capillary: { simulator: sim, states: [first.state, second.state] },
      uploads: [...sample.manifest.files]
        .sort((a, b) => a.deliveryOrder - b.deliveryOrder)
        .map((f) => ({ key: f.key, path: join(dir, "sample", ...f.key.split("/")) })),
    });
    return { names, env, sample, dir, result, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
