#!/usr/bin/env node
// `group-reports` (package.json "bin"): runs the TypeScript CLI through tsx's loader.
import { register } from "tsx/esm/api";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
// Results go to stdout: the functions' INFO logs (which Powertools writes there) only when asked for.
process.env.POWERTOOLS_LOG_LEVEL ??= "WARN";
register();
const { main } = await import("../lib/cli/main.ts");
const code = await main(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
});
process.exitCode = code;
