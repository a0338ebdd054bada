/**
 * The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`) on localhost, for the local
 * stack: a synchronous invocation runs the named handler in this process, with a Lambda context, and
 * answers as Lambda does (the handler's result as the payload; a thrown error as a function error with
 * `X-Amz-Function-Error: Unhandled` and {errorType, errorMessage}). The real LambdaClient talks to it
 * (LAMBDA_ENDPOINT), so the fan-out runs the same adapter code as in AWS.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Context } from "aws-lambda";
import { lambdaContext } from "./lambda-context.ts";

export type LocalHandler = (event: unknown, context: Context) => Promise<unknown>;

export interface LambdaSimulator {
  endpoint: string;
  /** Every invocation received: function name and event, in arrival order. */
  invocations: { functionName: string; event: unknown }[];
  stop(): Promise<void>;
}

const PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

export async function startLambdaSimulator(
  functions: Record<string, LocalHandler>,
): Promise<LambdaSimulator> {
  const invocations: LambdaSimulator["invocations"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(JSON.stringify(body ?? null));
      };
      const m = PATH.exec((req.url ?? "").split("?")[0] ?? "");
      // A name, or an ARN (arn:aws:lambda:region:account:function:name[:qualifier]).
      const raw = decodeURIComponent(m?.[1] ?? "");
      const name = raw.startsWith("arn:") ? (raw.split(":")[6] ?? "") : raw;
      const fn = req.method === "POST" ? functions[name] : undefined;
      if (!fn) {
        reply(
          404,
          { Type: "User", message: `Function not found: ${raw}` },
          {
            "x-amzn-errortype": "ResourceNotFoundException",
          },
        );
        return;
      }
      let event: unknown;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      } catch {
        reply(
          400,
          { message: "Could not parse request body into json" },
          {
            "x-amzn-errortype": "InvalidRequestContentException",
          },
        );
        return;
      }
      invocations.push({ functionName: name, event });
      fn(event, lambdaContext(name)).then(
        (out) => reply(200, out),
        (e: unknown) => {
          const err = e instanceof Error ? e : new Error(String(e));
          reply(
            200,
            { errorType: err.name, errorMessage: err.message },
            { "x-amz-function-error": "Unhandled" },
          );
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    invocations,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
