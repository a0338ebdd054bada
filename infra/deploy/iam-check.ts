import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import type { CfnTemplate } from "./package.ts";

/**
 * Does a function's role in the packaged template allow every AWS call the function really makes?
 * A recording proxy sits between a handler and the local S3 / DynamoDB endpoints; each request it saw is
 * turned into the IAM action and resource it needs, and checked against the role's statements (the same
 * evaluation as IAM for these cases: Allow statements, `*` globs in resources, StringLike on s3:prefix).
 */

export interface RecordedCall {
  service: "s3" | "dynamodb";
  method: string;
  url: string;
  target: string | null;
  body: string;
}

export interface RecordingProxy {
  endpoint: string;
  calls: RecordedCall[];
  stop(): Promise<void>;
}

/** Forwards every request to `upstream` unchanged and records it (DynamoDB bodies are kept: they name the table). */
export async function startRecordingProxy(
  upstream: string,
  service: RecordedCall["service"],
): Promise<RecordingProxy> {
  const up = new URL(upstream);
  const calls: RecordedCall[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      if (service === "dynamodb") chunks.push(c);
    });
    const fwd = request(
      {
        host: up.hostname,
        port: up.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: up.host },
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    fwd.on("error", (e) => {
      res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(fwd);
    req.on("end", () => {
      const target = req.headers["x-amz-target"];
      calls.push({
        service,
        method: req.method ?? "",
        url: req.url ?? "",
        target: typeof target === "string" ? target : null,
        body: Buffer.concat(chunks).toString("utf-8"),
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An IAM request: action, resource in the template's own terms, and the s3:prefix of a listing. */
export interface Needed {
  action: string;
  resource: string;
  prefix?: string;
}

/**
 * The IAM request a recorded call needs. `bucketAlias` maps a local bucket name to the name the template
 * gives it (e.g. `glr-smoke-exports-${AWS::AccountId}-${AWS::Region}`); DynamoDB resources are `table` and
 * `table/index/<name>`.
 */
export function neededFor(call: RecordedCall, bucketAlias: Record<string, string>): Needed[] {
  if (call.service === "dynamodb") {
    const op = (call.target ?? "").split(".")[1] ?? "";
    const body = JSON.parse(call.body || "{}") as {
      IndexName?: string;
      TransactItems?: Record<string, unknown>[];
    };
    // A transaction is authorized item by item, by the underlying action (no TransactWriteItems action).
    if (op === "TransactWriteItems" || op === "TransactGetItems") {
      const item: Record<string, string> = {
        Put: "PutItem",
        Update: "UpdateItem",
        Delete: "DeleteItem",
        ConditionCheck: "ConditionCheckItem",
        Get: "GetItem",
      };
      return (body.TransactItems ?? []).flatMap((t) =>
        Object.keys(t).map((k) => ({ action: `dynamodb:${item[k] ?? k}`, resource: "table" })),
      );
    }
    return [
      { action: `dynamodb:${op}`, resource: body.IndexName ? `table/index/${body.IndexName}` : "table" },
    ];
  }
  const u = new URL(call.url, "http://local");
  const [, bucket = "", ...rest] = u.pathname.split("/");
  const key = decodeURIComponent(rest.join("/"));
  const name = bucketAlias[bucket] ?? bucket;
  const q = u.searchParams;
  const object = `arn:\${AWS::Partition}:s3:::${name}/${key}`;
  if (key === "") {
    return [
      {
        action: "s3:ListBucket",
        resource: `arn:\${AWS::Partition}:s3:::${name}`,
        prefix: q.get("prefix") ?? "",
      },
    ];
  }
  switch (call.method) {
    case "GET":
    case "HEAD":
      return [{ action: "s3:GetObject", resource: object }];
    case "PUT":
      return [{ action: q.has("tagging") ? "s3:PutObjectTagging" : "s3:PutObject", resource: object }];
    case "POST":
      return [{ action: "s3:PutObject", resource: object }];
    case "DELETE":
      return [
        { action: q.has("uploadId") ? "s3:AbortMultipartUpload" : "s3:DeleteObject", resource: object },
      ];
    default:
      return [{ action: `s3:${call.method}`, resource: object }];
  }
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: { StringLike?: Record<string, string | string[]> };
}

function resourceText(r: unknown): string {
  if (typeof r === "string") return r;
  const o = r as Record<string, unknown>;
  const getAtt = o["Fn::GetAtt"];
  if (Array.isArray(getAtt) && getAtt[0] === "Table" && getAtt[1] === "Arn") return "table";
  const sub = o["Fn::Sub"];
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the Fn::Sub placeholder itself
  if (typeof sub === "string") return sub.replace("${Table.Arn}", "table");
  return JSON.stringify(r);
}

const glob = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`);
const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** Statements of the role the template gives a function (logical id prefix, e.g. `IngestDashexport`). */
export function roleStatements(template: CfnTemplate, fnLogicalPrefix: string): Statement[] {
  const role = template.Resources[`${fnLogicalPrefix}IamRoleLambdaExecution`];
  const policies = (role?.Properties?.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[];
  return policies.flatMap((p) => p.PolicyDocument.Statement);
}

export function isAllowed(statements: readonly Statement[], need: Needed): boolean {
  return statements.some((s) => {
    if (s.Effect !== "Allow" || !list(s.Action).includes(need.action)) return false;
    if (!list(s.Resource).some((r) => glob(resourceText(r)).test(need.resource))) return false;
    const prefixes = s.Condition?.StringLike?.["s3:prefix"];
    if (prefixes === undefined) return true;
    return need.prefix !== undefined && list(prefixes).some((p) => glob(p).test(need.prefix ?? ""));
  });
}
