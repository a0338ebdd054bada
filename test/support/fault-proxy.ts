/**
 * A fault-injecting HTTP reverse proxy for the local stack: put it between an SDK client and the S3
 * emulator (or the S3 event dispatcher) or DynamoDB Local, and it forwards every request unchanged until
 * a rule matches. Rules answer with an error status and body (503 SlowDown, DynamoDB throttling...), reset
 * the connection before or in the middle of the response body, hold a request forever (the caller is
 * "frozen", as a Lambda past its deadline), or rewrite a request and its answer (BatchWriteItem ->
 * UnprocessedItems). Every request and every fault is recorded for assertions.
 *
 * Request bodies of DynamoDB (JSON, small) are buffered so that rules can match on them; S3 bodies are
 * buffered too (test files are small), which keeps forwarding simple.
 */
import { createServer, type IncomingHttpHeaders, request, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface ProxiedRequest {
  method: string;
  /** Path and query, percent-encoded as sent. */
  url: string;
  /** Path decoded (`/bucket/key`), for S3 rules. */
  path: string;
  headers: IncomingHttpHeaders;
  /** `X-Amz-Target` of DynamoDB requests without the version prefix, e.g. `PutItem`. */
  operation: string | null;
  body: Buffer;
}

export type FaultAction =
  /** Answer with this status, body and headers (the request never reaches upstream). */
  | { kind: "status"; status: number; body: string; headers?: Record<string, string> }
  /** Forward, then send the headers and about `fraction` of the body, then reset the connection. */
  | { kind: "reset-midway"; fraction?: number }
  /** Reset the connection without an answer (the request never reaches upstream). */
  | { kind: "reset" }
  /** Never answer (the request never reaches upstream); the socket is destroyed when the proxy stops. */
  | { kind: "hold" }
  /** Forward after changing the request body; then change the answer's body with `response`. */
  | {
      kind: "rewrite";
      request: (body: Buffer) => Buffer;
      response: (body: Buffer, original: Buffer) => Buffer;
    };

export interface FaultRule {
  name: string;
  match: (req: ProxiedRequest) => boolean;
  action: FaultAction;
  /**
   * How many matching requests get the fault; default unlimited. With `perKey`, per distinct key
   * (e.g. the object key): the first `times` requests of each key fail, later ones pass.
   */
  times?: number;
  perKey?: (req: ProxiedRequest) => string;
  /** With perKey: at most this many faults in all. */
  total?: number;
  /** Apply to every n-th matching request only (1 = each). Counting starts at the first match. */
  every?: number;
}

export interface FaultRecord {
  rule: string;
  method: string;
  path: string;
  operation: string | null;
}

export interface FaultProxy {
  endpoint: string;
  add(rule: FaultRule): void;
  /** Remove a rule by name (or every rule). */
  clear(name?: string): void;
  /** Faults injected so far, in order. */
  readonly injected: FaultRecord[];
  /** Requests seen so far (method, decoded path, operation). */
  readonly seen: { method: string; path: string; operation: string | null; headers: IncomingHttpHeaders }[];
  /** Resolves when the next `hold` fault of rule `name` is applied. */
  held(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** S3 error body (the SDK reads Code and Message from it). */
export function s3Error(status: number, code: string, message: string): FaultAction {
  return {
    kind: "status",
    status,
    headers: { "content-type": "application/xml", "x-amz-request-id": "FAULTPROXY" },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>FAULTPROXY</RequestId></Error>`,
  };
}

/** DynamoDB error body (`__type` names the exception). */
export function dynamoError(status: number, type: string, message: string): FaultAction {
  return {
    kind: "status",
    status,
    headers: { "content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "FAULTPROXY" },
    body: JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message }),
  };
}

function decodePath(url: string): string {
  const q = url.indexOf("?");
  const raw = q === -1 ? url : url.slice(0, q);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

export async function startFaultProxy(upstreamUrl: string): Promise<FaultProxy> {
  const upstream = new URL(upstreamUrl);
  const host = upstream.hostname;
  const port = Number(upstream.port || 80);
  const rules: { rule: FaultRule; matched: number; applied: number; perKey: Map<string, number> }[] = [];
  const injected: FaultRecord[] = [];
  const seen: FaultProxy["seen"] = [];
  const heldSockets = new Set<Socket>();
  const holdWaiters = new Map<string, (() => void)[]>();

  const pick = (req: ProxiedRequest) => {
    for (const r of rules) {
      if (!r.rule.match(req)) continue;
      r.matched += 1;
      const every = r.rule.every ?? 1;
      if ((r.matched - 1) % every !== 0) continue;
      if (r.rule.total !== undefined && r.applied >= r.rule.total) continue;
      if (r.rule.perKey) {
        const k = r.rule.perKey(req);
        const n = r.perKey.get(k) ?? 0;
        if (r.rule.times !== undefined && n >= r.rule.times) continue;
        r.perKey.set(k, n + 1);
      } else if (r.rule.times !== undefined && r.applied >= r.rule.times) continue;
      r.applied += 1;
      return r.rule;
    }
    return null;
  };

  const forward = (
    req: ProxiedRequest,
    body: Buffer,
    res: ServerResponse,
    onAnswer?: (status: number, headers: IncomingHttpHeaders, body: Buffer) => void,
  ) => {
    const headers: IncomingHttpHeaders = { ...req.headers };
    delete headers.connection;
    delete headers["transfer-encoding"];
    headers["content-length"] = String(body.byteLength);
    const up = request({ host, port, method: req.method, path: req.url, headers }, (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on("data", (c: Buffer) => chunks.push(c));
      upRes.on("error", (e) => res.destroy(e));
      upRes.on("end", () => {
        const out = Buffer.concat(chunks);
        if (onAnswer) onAnswer(upRes.statusCode ?? 502, upRes.headers, out);
        else {
          const h = { ...upRes.headers };
          delete h["transfer-encoding"];
          delete h.connection;
          h["content-length"] = String(out.byteLength);
          res.writeHead(upRes.statusCode ?? 502, h);
          res.end(out);
        }
      });
    });
    up.on("error", (e) => res.destroy(e));
    up.end(body);
  };

  const server: Server = createServer((inc, res) => {
    const chunks: Buffer[] = [];
    inc.on("data", (c: Buffer) => chunks.push(c));
    inc.on("end", () => {
      const target = inc.headers["x-amz-target"];
      const t = Array.isArray(target) ? target[0] : target;
      const req: ProxiedRequest = {
        method: inc.method ?? "GET",
        url: inc.url ?? "/",
        path: decodePath(inc.url ?? "/"),
        headers: inc.headers,
        operation: t ? (t.split(".").pop() ?? null) : null,
        body: Buffer.concat(chunks),
      };
      seen.push({ method: req.method, path: req.path, operation: req.operation, headers: req.headers });
      const rule = pick(req);
      if (!rule) {
        forward(req, req.body, res);
        return;
      }
      injected.push({ rule: rule.name, method: req.method, path: req.path, operation: req.operation });
      const a = rule.action;
      switch (a.kind) {
        case "status":
          res.writeHead(a.status, { ...a.headers, "content-length": String(Buffer.byteLength(a.body)) });
          res.end(a.body);
          return;
        case "reset":
          inc.socket.destroy();
          return;
        case "hold": {
          heldSockets.add(inc.socket);
          const waiters = holdWaiters.get(rule.name) ?? [];
          holdWaiters.delete(rule.name);
          for (const w of waiters) w();
          return;
        }
        case "reset-midway":
          forward(req, req.body, res, (status, headers, body) => {
            const h = { ...headers };
            delete h["transfer-encoding"];
            delete h.connection;
            h["content-length"] = String(body.byteLength);
            res.writeHead(status, h);
            const cut = Math.max(1, Math.floor(body.byteLength * (a.fraction ?? 0.5)));
            res.write(body.subarray(0, cut), () => {
              // Let the bytes leave before the reset, so the client really sees a body cut midway.
              setTimeout(() => inc.socket.destroy(), 20);
            });
          });
          return;
        case "rewrite": {
          const sent = a.request(req.body);
          forward(req, sent, res, (status, headers, body) => {
            const out = status === 200 ? a.response(body, req.body) : body;
            const h = { ...headers };
            delete h["transfer-encoding"];
            delete h.connection;
            delete h["x-amz-crc32"];
            h["content-length"] = String(out.byteLength);
            res.writeHead(status, h);
            res.end(out);
          });
          return;
        }
      }
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("fault proxy: no TCP address");

  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    injected,
    seen,
    add(rule) {
      rules.push({ rule, matched: 0, applied: 0, perKey: new Map() });
    },
    clear(name) {
      for (let i = rules.length - 1; i >= 0; i--)
        if (name === undefined || rules[i]?.rule.name === name) rules.splice(i, 1);
    },
    held(name) {
      return new Promise((ok) => {
        const list = holdWaiters.get(name) ?? [];
        list.push(ok);
        holdWaiters.set(name, list);
      });
    },
    async stop() {
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
        for (const s of heldSockets) s.destroy();
      });
    },
  };
}
