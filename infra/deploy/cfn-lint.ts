import { createRequire } from "node:module";

/**
 * cfn-lint (npm) on a CloudFormation template, with a current resource specification.
 *
 * The npm cfn-lint validates intrinsics, references, conditions and every property against a resource
 * specification, but the one it ships dates from 2019 (no AWS::Transfer::Server, no Lambda Architectures or
 * EphemeralStorage, no S3 OwnershipControls...). So its specification is replaced, in memory, by the one of
 * @aws-cdk/cfnspec, with two corrections:
 * - list properties whose item type is a "property type" that is only a primitive (AWS::Transfer::Server
 *   Protocols, AWS::Transfer::User SshPublicKeys: lists of strings in CloudFormation) become primitive lists;
 * - cfn-lint renders `Fn::Sub` placeholders without removing their `${}` (`arn:${aws}:s3:::...`), so its
 *   "Expecting an ARN, got '...${...}...'" findings on such rendered values are dropped (only those).
 */

const require = createRequire(import.meta.url);

export interface LintFinding {
  level: "crit" | "warn" | "info";
  message: string;
  resource: string;
}

interface Spec {
  PropertyTypes: Record<string, { PrimitiveType?: string; Properties?: Record<string, SpecProperty> }>;
  ResourceTypes: Record<string, { Properties?: Record<string, SpecProperty> }>;
  [k: string]: unknown;
}
interface SpecProperty {
  Type?: string;
  ItemType?: string;
  PrimitiveItemType?: string;
}

function correctedSpec(): Spec {
  // Corrected in place: this module is its only user in the process.
  const spec = require("@aws-cdk/cfnspec/spec/specification.json") as Spec;
  const fix = (owner: string, props: Record<string, SpecProperty> | undefined) => {
    for (const p of Object.values(props ?? {})) {
      if ((p.Type !== "List" && p.Type !== "Map") || !p.ItemType) continue;
      const item = spec.PropertyTypes[`${owner}.${p.ItemType}`];
      if (item?.PrimitiveType && !item.Properties) {
        p.PrimitiveItemType = item.PrimitiveType;
        delete p.ItemType;
      }
    }
  };
  for (const [name, r] of Object.entries(spec.ResourceTypes)) fix(name, r.Properties);
  for (const [name, t] of Object.entries(spec.PropertyTypes)) fix(name.split(".")[0] ?? name, t.Properties);
  return spec;
}

let installed = false;
function installSpec(): void {
  if (installed) return;
  const awsData = require("cfn-lint/lib/awsData.js") as { awsResources: Record<string, unknown> };
  const target = awsData.awsResources;
  for (const k of Object.keys(target)) delete target[k];
  Object.assign(target, correctedSpec());
  installed = true;
}

const SUB_RENDERING = /^Expecting an ARN, got '.*\$\{[^}]*\}.*'$/;

export function lintTemplate(template: unknown): LintFinding[] {
  installSpec();
  const api = require("cfn-lint/lib/api.js") as {
    validateJsonObject(
      t: unknown,
      o: object,
    ): { errors: Record<"crit" | "warn" | "info", { message: string; resource: string }[]> };
  };
  // The validator mutates what it validates (resolved intrinsics): give it a copy.
  const result = api.validateJsonObject(structuredClone(template), {});
  const out: LintFinding[] = [];
  for (const level of ["crit", "warn", "info"] as const) {
    for (const e of result.errors[level]) {
      if (SUB_RENDERING.test(e.message)) continue;
      out.push({ level, message: e.message, resource: e.resource });
    }
  }
  return out;
}

// CLI: `npx tsx infra/deploy/cfn-lint.ts .serverless/cloudformation-template-update-stack.json`
if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2] ?? ".serverless/cloudformation-template-update-stack.json";
  const { readFileSync } = await import("node:fs");
  const findings = lintTemplate(JSON.parse(readFileSync(file, "utf-8")));
  for (const f of findings) console.log(`${f.level}\t${f.resource}\t${f.message}`);
  console.log(findings.length === 0 ? `${file}: no findings` : `${file}: ${findings.length} findings`);
  process.exitCode = findings.some((f) => f.level !== "info") ? 1 : 0;
}
