/* biome-ignore-all lint/suspicious/noExplicitAny: a CloudFormation template is untyped JSON */
/* biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub strings */
import { beforeAll, describe, expect, it } from "vitest";
import { lintTemplate } from "../../infra/deploy/cfn-lint.ts";
import { type CfnTemplate, sharedPackage, TEST_PACKAGE_OPTIONS } from "../../infra/deploy/package.ts";
import { tableDefinition } from "../../lib/adapters/table.ts";
import { METRIC } from "../../lib/metrics.ts";

/**
 * The synthesized CloudFormation template (`osls package`, offline, no credentials) holds what the
 * deployment promises: functions, triggers, storage, least-privilege roles, failure handling, alarms, SFTP.
 */

type Resource = CfnTemplate["Resources"][string];
type Statement = {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
};

const PUBLIC_KEY = TEST_PACKAGE_OPTIONS.params?.sftpPublicKey;
/** The triggered functions (events, retries, failure destinations); `part` runs only when the aggregation fans out. */
const FN = { ingest: "IngestDashexport", sync: "SyncDashgroups", aggregate: "AggregateDashgroups" } as const;
const ALL_FN = { ...FN, part: "AggregateDashpart" } as const;

let t: CfnTemplate;

beforeAll(async () => {
  t = (await sharedPackage(TEST_PACKAGE_OPTIONS)).template;
}, 300_000);

const res = (id: string): Resource => {
  const r = t.Resources[id];
  if (!r) throw new Error(`no resource ${id}`);
  return r;
};
const props = (id: string) => res(id).Properties as Record<string, any>;
const ofType = (type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);

/** A CloudFormation string value as text: plain, or the template of an Fn::Sub. */
function text(v: unknown): string {
  if (typeof v === "string") return v;
  const sub = (v as { "Fn::Sub"?: unknown })?.["Fn::Sub"];
  if (typeof sub === "string") return sub;
  if (Array.isArray(sub) && typeof sub[0] === "string") return sub[0];
  return JSON.stringify(v);
}
const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

function statements(fn: keyof typeof ALL_FN): Statement[] {
  const role = props(`${ALL_FN[fn]}IamRoleLambdaExecution`);
  return role.Policies.flatMap((p: any) => p.PolicyDocument.Statement as Statement[]);
}
/** Every (action, resource text) pair a function's role allows. */
function grants(fn: keyof typeof ALL_FN): [string, string][] {
  return statements(fn)
    .filter((s) => s.Effect === "Allow")
    .flatMap((s) =>
      list(s.Action).flatMap((a) => list(s.Resource).map((r) => [a, text(r)] as [string, string])),
    );
}
const s3Objects = (fn: keyof typeof ALL_FN, action: string) =>
  grants(fn)
    .filter(([a]) => a === action)
    .map(([, r]) =>
      r.replace(
        /^arn:\$\{AWS::Partition\}:s3:::glr-ci-(exports|reports)-\$\{AWS::AccountId\}-\$\{AWS::Region\}/,
        "$1",
      ),
    )
    .sort();

describe("serverless.yml packaged offline", () => {
  it("resolves every framework variable (nothing needs AWS at package time)", () => {
    const json = JSON.stringify(t);
    for (const v of [
      "${self:",
      "${sls:",
      "${param:",
      "${opt:",
      "${aws:",
      "${ssm:",
      "${env:",
      "${cf:",
      "${s3:",
    ]) {
      expect(json).not.toContain(v);
    }
  });

  // Loading the specification (19 MB of JSON) takes seconds on a busy machine.
  it("passes cfn-lint", { timeout: 60_000 }, () => {
    expect(lintTemplate(t)).toEqual([]);
  });

  it("cfn-lint does find errors in a broken template", { timeout: 60_000 }, () => {
    const broken = structuredClone(t);
    (broken.Resources.ExportsBucket as any).Properties.BucketEncryptionTypo = {};
    (broken.Resources.Table as any).Properties.StreamSpecification = { StreamViewType: { Ref: "Nowhere" } };
    const findings = lintTemplate(broken);
    expect(findings.some((f) => f.resource.includes("BucketEncryptionTypo"))).toBe(true);
    expect(findings.some((f) => f.message.includes("Nowhere"))).toBe(true);
  });
});

describe("functions", () => {
  it("are four ESM bundles on nodejs22.x", () => {
    const fns = ofType("AWS::Lambda::Function");
    expect(fns.map(([id]) => id).sort()).toEqual(
      Object.values(ALL_FN)
        .map((f) => `${f}LambdaFunction`)
        .sort(),
    );
    for (const [, f] of fns) expect(f.Properties?.Runtime).toBe("nodejs22.x");
    expect(props(`${FN.ingest}LambdaFunction`).Handler).toBe("functions/ingest-export.handler");
  });

  it("read their configuration from the environment: names, metrics, Capillary credentials from SSM", () => {
    const env = props(`${FN.sync}LambdaFunction`).Environment.Variables;
    expect(text(env.EXPORTS_BUCKET)).toBe("glr-ci-exports-${AWS::AccountId}-${AWS::Region}");
    expect(env.TABLE_NAME).toEqual({ Ref: "Table" });
    expect(env.CAPILLARY_CREDENTIALS_SSM_PREFIX).toBe("/group-loyalty-reports/ci/capillary");
    expect(env.CAPILLARY_OAUTH_SECRET).toBeUndefined();
    expect(env.POWERTOOLS_SERVICE_NAME).toBe("group-loyalty-reports-ci");
    const ssm = grants("sync").filter(([a]) => a.startsWith("ssm:"));
    expect(ssm.length).toBeGreaterThan(0);
    for (const [, r] of ssm) expect(r).toMatch(/:parameter\/group-loyalty-reports\/ci\/capillary\/\*$/);
  });

  it("keep their logs for the configured retention", () => {
    const groups = ofType("AWS::Logs::LogGroup");
    expect(groups).toHaveLength(4);
    for (const [, g] of groups) expect(g.Properties?.RetentionInDays).toBe(90);
  });
});

describe("triggers", () => {
  it("S3 invokes ingest for every ObjectCreated kind under exports/ only", () => {
    const n = props("ExportsBucket").NotificationConfiguration;
    expect(n.LambdaConfigurations).toEqual([
      {
        Event: "s3:ObjectCreated:*",
        Filter: { S3Key: { Rules: [{ Name: "prefix", Value: "exports/" }] } },
        Function: { "Fn::GetAtt": [`${FN.ingest}LambdaFunction`, "Arn"] },
      },
    ]);
    expect(n.QueueConfigurations ?? n.TopicConfigurations).toBeUndefined();
    const perm = props(`${FN.ingest}S3Permission`);
    expect(perm.Principal).toBe("s3.amazonaws.com");
    expect(perm.SourceAccount).toEqual({ Ref: "AWS::AccountId" });
    expect(list(res("ExportsBucket").DependsOn)).toContain(`${FN.ingest}S3Permission`);
  });

  it("schedules run sync and aggregation", () => {
    const rules = ofType("AWS::Events::Rule").map(([, r]) => r.Properties as any);
    const target = (fn: string) =>
      rules.find((r) => r.Targets.some((x: any) => x.Arn?.["Fn::GetAtt"]?.[0] === `${fn}LambdaFunction`));
    expect(target(FN.sync)?.ScheduleExpression).toBe("rate(6 hours)");
    expect(target(FN.aggregate)?.ScheduleExpression).toBe("rate(15 minutes)");
    expect(target(FN.ingest)).toBeUndefined();
  });
});

describe("storage", () => {
  it("the table has the keys and GSI1 of lib/adapters/table.ts, and point-in-time recovery", () => {
    const p = props("Table");
    const def = tableDefinition("x");
    expect(p.KeySchema).toEqual(def.KeySchema);
    expect(p.GlobalSecondaryIndexes).toEqual(def.GlobalSecondaryIndexes);
    expect(
      [...p.AttributeDefinitions].sort((a: any, b: any) => a.AttributeName.localeCompare(b.AttributeName)),
    ).toEqual(
      [...(def.AttributeDefinitions ?? [])].sort((a, b) =>
        (a.AttributeName ?? "").localeCompare(b.AttributeName ?? ""),
      ),
    );
    expect(p.BillingMode).toBe("PAY_PER_REQUEST");
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(res("Table").DeletionPolicy).toBe("Retain");
  });

  it.each(["ExportsBucket", "ReportsBucket"])(
    "%s blocks public access, encrypts and refuses plain HTTP",
    (b) => {
      const p = props(b);
      expect(p.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(
        p.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm,
      ).toBe("AES256");
      const policy = ofType("AWS::S3::BucketPolicy").find(([, r]) => (r.Properties as any).Bucket.Ref === b);
      expect(policy).toBeDefined();
      const deny = (policy?.[1].Properties as any)?.PolicyDocument.Statement.find(
        (s: any) => s.Effect === "Deny",
      );
      expect(deny.Condition).toEqual({ Bool: { "aws:SecureTransport": "false" } });
      expect(deny.Action).toBe("s3:*");
      expect(deny.Resource).toEqual([{ "Fn::GetAtt": [b, "Arn"] }, { "Fn::Sub": `\${${b}.Arn}/*` }]);
    },
  );

  it("lifecycle rules expire rejects, optionally staging, left-over fan-out work, and stale uploads", () => {
    const rules = props("ExportsBucket").LifecycleConfiguration.Rules;
    expect(rules).toContainEqual({
      Id: "expire-aggregation-work",
      Status: "Enabled",
      Prefix: "aggregation-work/",
      ExpirationInDays: 1,
    });
    expect(rules).toContainEqual({
      Id: "expire-rejects",
      Status: "Enabled",
      Prefix: "rejects/",
      ExpirationInDays: 90,
    });
    const staging = rules.find((r: any) => r["Fn::If"]);
    expect(staging["Fn::If"][0]).toBe("HasStagingExpiration");
    expect(staging["Fn::If"][1]).toMatchObject({ Prefix: "staging/", Status: "Enabled" });
    expect(t.Conditions?.HasStagingExpiration).toEqual({
      "Fn::Not": [{ "Fn::Equals": ["days-0", "days-0"] }],
    });
    // Report runs are not expired by a rule (it could not tell the current run from superseded ones):
    // the aggregation deletes superseded runs after REPORT_RETENTION_DAYS.
    const reports = props("ReportsBucket").LifecycleConfiguration.Rules;
    expect(reports.filter((r: any) => r.ExpirationInDays !== undefined)).toEqual([]);
    expect(props(`${FN.aggregate}LambdaFunction`).Environment.Variables.REPORT_RETENTION_DAYS).toBe("30");
    for (const r of [...rules, ...reports].filter((x: any) => x.Id === "abort-incomplete-uploads")) {
      expect(r.AbortIncompleteMultipartUpload.DaysAfterInitiation).toBeGreaterThan(0);
    }
  });
});

describe("least privilege", () => {
  it("each function has its own role with no wildcard action and no wildcard resource", () => {
    for (const fn of Object.keys(ALL_FN) as (keyof typeof ALL_FN)[]) {
      const role = `${ALL_FN[fn]}IamRoleLambdaExecution`;
      expect(props(`${ALL_FN[fn]}LambdaFunction`).Role).toEqual({ "Fn::GetAtt": [role, "Arn"] });
      expect(props(role).ManagedPolicyArns).toEqual([]);
      for (const [action, resource] of grants(fn)) {
        expect(action).not.toContain("*");
        expect(resource).not.toBe("*");
      }
    }
  });

  it("ingest reads exports/, writes staging/ and rejects/ and the ledger", () => {
    expect(s3Objects("ingest", "s3:GetObject")).toEqual(["exports/exports/*"]);
    expect(s3Objects("ingest", "s3:PutObject")).toEqual(["exports/rejects/*", "exports/staging/*"]);
    const ddb = grants("ingest").filter(([a]) => a.startsWith("dynamodb:"));
    const table = JSON.stringify({ "Fn::GetAtt": ["Table", "Arn"] });
    expect(ddb.sort()).toEqual([
      ["dynamodb:GetItem", table],
      ["dynamodb:PutItem", table],
      ["dynamodb:Query", "${Table.Arn}/index/GSI1"],
      ["dynamodb:UpdateItem", table],
    ]);
  });

  it("sync reads membership/ and writes the table", () => {
    expect(s3Objects("sync", "s3:GetObject")).toEqual(["exports/membership/*"]);
    expect(s3Objects("sync", "s3:PutObject")).toEqual([]);
    expect(grants("sync").map(([a]) => a)).toEqual(
      expect.arrayContaining(["dynamodb:BatchWriteItem", "dynamodb:Query"]),
    );
  });

  it("aggregate reads staging/ and writes reports/ (and its fan-out work objects)", () => {
    expect(s3Objects("aggregate", "s3:GetObject")).toEqual([
      "exports/aggregation-work/*",
      "exports/staging/*",
      "reports/reports/*",
    ]);
    expect(s3Objects("aggregate", "s3:PutObject")).toEqual([
      "exports/aggregation-work/*",
      "reports/reports/*",
    ]);
    const writes = grants("aggregate").filter(([a]) => /dynamodb:(Put|Delete|BatchWrite)/.test(a));
    expect(writes).toEqual([]);
  });

  it("no function writes under exports/ (no recursive invocation) or deletes any object but expired report runs", () => {
    for (const fn of Object.keys(ALL_FN) as (keyof typeof ALL_FN)[]) {
      expect(s3Objects(fn, "s3:PutObject").filter((r) => r.startsWith("exports/exports/"))).toEqual([]);
      const deletes = grants(fn).filter(([a]) => a.startsWith("s3:Delete"));
      if (fn !== "aggregate") expect(deletes).toEqual([]);
    }
    // The aggregation deletes superseded runs (reports/period=P/run=R/...) once they expire, and its own
    // fan-out work objects, nothing else.
    expect(
      grants("aggregate")
        .filter(([a]) => a.startsWith("s3:Delete"))
        .map(([a]) => a),
    ).toEqual(["s3:DeleteObject", "s3:DeleteObject"]);
    expect(s3Objects("aggregate", "s3:DeleteObject")).toEqual([
      "exports/aggregation-work/*",
      "reports/reports/period=*/run=*",
    ]);
  });

  it("the fan-out: aggregate invokes only the part function, which reads staging/ and writes only work objects", () => {
    const part =
      "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:group-loyalty-reports-ci-aggregate-part";
    expect(grants("aggregate").filter(([a]) => a.startsWith("lambda:"))).toEqual([
      ["lambda:InvokeFunction", part],
    ]);
    expect(props(`${ALL_FN.part}LambdaFunction`).FunctionName).toBe(
      "group-loyalty-reports-ci-aggregate-part",
    );
    expect(s3Objects("part", "s3:GetObject")).toEqual(["exports/aggregation-work/*", "exports/staging/*"]);
    expect(s3Objects("part", "s3:PutObject")).toEqual(["exports/aggregation-work/*"]);
    expect(grants("part").filter(([a]) => !a.startsWith("s3:") && !a.startsWith("logs:"))).toEqual([]);
    const env = props(`${FN.aggregate}LambdaFunction`).Environment.Variables;
    expect(env).toMatchObject({
      AGGREGATE_FANOUT: "off",
      AGGREGATE_PART_FUNCTION: "group-loyalty-reports-ci-aggregate-part",
      AGGREGATE_FANOUT_MIN_ROWS: "2000000",
      AGGREGATE_FANOUT_CONCURRENCY: "16",
    });
    // No trigger: nothing but aggregate-groups invokes it (no permission, no event source, no schedule).
    const invokers = [
      ...ofType("AWS::Lambda::Permission"),
      ...ofType("AWS::Lambda::EventSourceMapping"),
    ].filter(([, r]) => JSON.stringify(r.Properties).includes(`${ALL_FN.part}LambdaFunction`));
    expect(invokers).toEqual([]);
  });

  it("bucket listings are limited to the function's prefix", () => {
    const prefixes = (fn: keyof typeof FN) =>
      statements(fn)
        .filter((s) => list(s.Action).includes("s3:ListBucket"))
        .map((s) => (s.Condition as any)?.StringLike?.["s3:prefix"]);
    expect(prefixes("ingest")).toEqual([["exports/*"]]);
    expect(prefixes("sync")).toEqual([["membership/*"]]);
    expect(prefixes("aggregate")).toEqual([["reports/*"]]);
  });
});

describe("failures and alarms", () => {
  it("every function sends failed asynchronous invocations to the failed-invocations queue", () => {
    const configs = ofType("AWS::Lambda::EventInvokeConfig").map(([, r]) => r.Properties as any);
    for (const fn of Object.values(FN)) {
      const c = configs.find((x) => x.FunctionName.Ref === `${fn}LambdaFunction`);
      expect(c?.DestinationConfig.OnFailure.Destination).toEqual({
        "Fn::GetAtt": ["FailedInvocationsQueue", "Arn"],
      });
      expect(c?.MaximumRetryAttempts).toBe(2);
    }
    for (const fn of Object.keys(FN) as (keyof typeof FN)[]) {
      expect(grants(fn)).toContainEqual([
        "sqs:SendMessage",
        JSON.stringify({ "Fn::GetAtt": ["FailedInvocationsQueue", "Arn"] }),
      ]);
    }
  });

  it("alarms on each function's errors, the queue depth, report age and failed groups, all to the topic", () => {
    const alarms = ofType("AWS::CloudWatch::Alarm").map(([, r]) => r.Properties as any);
    for (const a of alarms) expect(a.AlarmActions).toEqual([{ Ref: "AlarmTopic" }]);
    for (const fn of Object.values(FN)) {
      expect(
        alarms.some((a) => a.MetricName === "Errors" && a.Dimensions[0].Value.Ref === `${fn}LambdaFunction`),
      ).toBe(true);
    }
    expect(alarms.find((a) => a.Namespace === "AWS/SQS")?.Dimensions[0].Value).toEqual({
      "Fn::GetAtt": ["FailedInvocationsQueue", "QueueName"],
    });
    const env = props(`${FN.aggregate}LambdaFunction`).Environment.Variables;
    const custom = (name: string) => alarms.find((a) => a.MetricName === name);
    for (const name of [METRIC.unreportedDeliveryAge, METRIC.syncGroupsFailed]) {
      expect(custom(name)?.Namespace).toBe(env.POWERTOOLS_METRICS_NAMESPACE);
      expect(custom(name)?.Dimensions).toEqual([{ Name: "service", Value: env.POWERTOOLS_SERVICE_NAME }]);
    }
    expect(custom(METRIC.unreportedDeliveryAge)?.TreatMissingData).toBe("breaching");
    expect(custom(METRIC.unreportedDeliveryAge)?.Threshold).toBe(10800);
    expect(props("AlarmEmailSubscription")).toMatchObject({ Protocol: "email", Endpoint: "ops@example.com" });
  });
});

describe("SFTP endpoint for Insights+ (sftp=true)", () => {
  it("is a Transfer Family SFTP server on S3, created only when enabled", () => {
    expect(t.Conditions?.SftpEnabled).toEqual({ "Fn::Equals": ["sftp-true", "sftp-true"] });
    expect(res("SftpServer").Condition).toBe("SftpEnabled");
    expect(props("SftpServer")).toMatchObject({
      Domain: "S3",
      Protocols: ["SFTP"],
      IdentityProviderType: "SERVICE_MANAGED",
    });
  });

  it("its user lands in exports/ and may not leave it", () => {
    const u = props("SftpUser");
    expect(u.HomeDirectoryType).toBe("LOGICAL");
    expect(u.HomeDirectoryMappings).toEqual([
      { Entry: "/", Target: { "Fn::Sub": "/${ExportsBucket}/exports" } },
    ]);
    expect(u.SshPublicKeys).toEqual([
      { "Fn::If": ["HasSftpPublicKey", PUBLIC_KEY, { Ref: "AWS::NoValue" }] },
    ]);
    const policy = props("SftpUserRole").Policies[0].PolicyDocument.Statement as Statement[];
    for (const s of policy) {
      for (const a of list(s.Action)) expect(a).not.toContain("*");
      const r = text(s.Resource);
      if (list(s.Action).includes("s3:ListBucket"))
        expect((s.Condition as any).StringLike["s3:prefix"]).toContain("exports/*");
      else expect(r).toBe("${ExportsBucket.Arn}/exports/*");
    }
    expect(policy.flatMap((s) => list(s.Action)).filter((a) => a.startsWith("s3:Delete"))).toEqual([]);
  });
});
