import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { GetParametersCommand, type GetParametersCommandOutput, type SSMClient } from "@aws-sdk/client-ssm";
import { z } from "zod";
import type { CapillaryConfig } from "../config.ts";
import type { Credentials } from "./capillary-api.ts";

/**
 * Where the Capillary client gets its credentials (passed as `deps.credentials` to createCapillaryApi):
 *
 * - CAPILLARY_CREDENTIALS_SSM_PREFIX: SSM parameters `<prefix>/oauth-key` and `<prefix>/oauth-secret`
 *   (CAPILLARY_AUTH=oauth) or `<prefix>/username` and `<prefix>/password` (basic), read with decryption
 *   (SecureString) in one GetParameters call.
 * - CAPILLARY_CREDENTIALS_SECRET_ARN: a Secrets Manager secret whose string is JSON
 *   `{"key":..,"secret":..}` (oauth; `oauthKey`/`oauthSecret` also read) or `{"username":..,"password":..}`.
 * - Neither: the CAPILLARY_OAUTH_* / CAPILLARY_USERNAME / CAPILLARY_PASSWORD variables (local runs).
 *
 * The client caches what this returns for the life of the process (one fetch per cold start) and calls it
 * again after an authentication failure (a rotated secret). Calls within `minRefreshMs` of the last
 * fetch share its result, so a wrong secret cannot turn every failing request into an AWS call. Errors
 * name the source and the parameter, never a value.
 */

export class CredentialsError extends Error {
  readonly code = "CAPILLARY_CREDENTIALS";
  constructor(message: string) {
    super(message);
    this.name = "CredentialsError";
  }
}

export interface CredentialsSourceDeps {
  ssm?: () => SSMClient;
  secrets?: () => SecretsManagerClient;
  nowMs?: () => number;
  /** Default 30 s. */
  minRefreshMs?: number;
}

export type CredentialsSource = "ssm" | "secrets-manager" | "env";

export function credentialsSourceOf(config: CapillaryConfig): CredentialsSource {
  if (config.CAPILLARY_CREDENTIALS_SSM_PREFIX) return "ssm";
  if (config.CAPILLARY_CREDENTIALS_SECRET_ARN) return "secrets-manager";
  return "env";
}

const nonEmpty = z.string().min(1);
const secretSchema = z.object({
  key: nonEmpty.optional(),
  secret: nonEmpty.optional(),
  oauthKey: nonEmpty.optional(),
  oauthSecret: nonEmpty.optional(),
  username: nonEmpty.optional(),
  password: nonEmpty.optional(),
});

export function capillaryCredentialsProvider(
  config: CapillaryConfig,
  deps: CredentialsSourceDeps = {},
): () => Promise<Credentials> {
  const source = credentialsSourceOf(config);
  const nowMs = deps.nowMs ?? Date.now;
  const minRefreshMs = deps.minRefreshMs ?? 30_000;
  const oauth = config.CAPILLARY_AUTH === "oauth";

  const fromEnv = async (): Promise<Credentials> => {
    if (oauth) {
      const { CAPILLARY_OAUTH_KEY: key, CAPILLARY_OAUTH_SECRET: secret } = config;
      if (!key || !secret) throw new CredentialsError("CAPILLARY_OAUTH_KEY / CAPILLARY_OAUTH_SECRET not set");
      return { kind: "oauth", key, secret };
    }
    const { CAPILLARY_USERNAME: username, CAPILLARY_PASSWORD: password } = config;
    if (!username || !password) throw new CredentialsError("CAPILLARY_USERNAME / CAPILLARY_PASSWORD not set");
    return { kind: "basic", username, password };
  };

  const fromSsm = async (): Promise<Credentials> => {
    const prefix = config.CAPILLARY_CREDENTIALS_SSM_PREFIX ?? "";
    const [a, b] = oauth ? ["oauth-key", "oauth-secret"] : ["username", "password"];
    const names = [`${prefix}/${a}`, `${prefix}/${b}`];
    if (!deps.ssm) throw new CredentialsError("no SSM client configured");
    let out: GetParametersCommandOutput;
    try {
      out = await deps.ssm().send(new GetParametersCommand({ Names: names, WithDecryption: true }));
    } catch (e) {
      throw new CredentialsError(`SSM GetParameters failed (${errorName(e)})`);
    }
    const value = (name: string) => {
      const v = out.Parameters?.find((p) => p.Name === name)?.Value;
      if (!v) throw new CredentialsError(`SSM parameter ${name} is missing or empty`);
      return v;
    };
    const [x, y] = [value(names[0] as string), value(names[1] as string)];
    return oauth ? { kind: "oauth", key: x, secret: y } : { kind: "basic", username: x, password: y };
  };

  const fromSecret = async (): Promise<Credentials> => {
    const arn = config.CAPILLARY_CREDENTIALS_SECRET_ARN ?? "";
    if (!deps.secrets) throw new CredentialsError("no Secrets Manager client configured");
    let text: string | undefined;
    try {
      const out = await deps.secrets().send(new GetSecretValueCommand({ SecretId: arn }));
      text =
        out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString("utf8") : undefined);
    } catch (e) {
      throw new CredentialsError(`Secrets Manager GetSecretValue failed (${errorName(e)})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text ?? "");
    } catch {
      throw new CredentialsError("the Capillary secret is not a JSON object");
    }
    const r = secretSchema.safeParse(parsed);
    if (!r.success) throw new CredentialsError("the Capillary secret has non-string or empty fields");
    const s = r.data;
    if (oauth) {
      const key = s.key ?? s.oauthKey;
      const secret = s.secret ?? s.oauthSecret;
      if (!key || !secret) throw new CredentialsError("the Capillary secret lacks key and secret");
      return { kind: "oauth", key, secret };
    }
    if (!s.username || !s.password) {
      throw new CredentialsError("the Capillary secret lacks username and password");
    }
    return { kind: "basic", username: s.username, password: s.password };
  };

  const fetchOnce = source === "ssm" ? fromSsm : source === "secrets-manager" ? fromSecret : fromEnv;
  let last: { at: number; value: Promise<Credentials> } | null = null;
  return () => {
    const t = nowMs();
    if (last !== null && t - last.at < minRefreshMs) return last.value;
    const value = fetchOnce();
    const entry = { at: t, value };
    last = entry;
    // A failed fetch is not reused: the next call tries again.
    value.catch(() => {
      if (last === entry) last = null;
    });
    return value;
  };
}

/** The AWS error's name (AccessDeniedException, ParameterNotFound...), never its message. */
function errorName(e: unknown): string {
  const name = e instanceof Error ? e.name : "";
  return /^[A-Za-z0-9_.]{1,80}$/.test(name) ? name : "error";
}
