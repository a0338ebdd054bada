import { describe, expect, it } from "vitest";
import { loadConfig, syncSchema } from "../../lib/config.ts";

describe("sync configuration", () => {
  it("defaults", () => {
    expect(loadConfig({}, syncSchema)).toEqual({
      CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH: [],
      MEMBERSHIP_CSV_PREFIX: "membership/",
      SYNC_KNOWN_GROUPS: true,
      SYNC_CONCURRENCY: 4,
      SYNC_TIME_RESERVE_MS: 90_000,
      SYNC_CONTINUE: "self",
    });
  });

  it("extended field searches: one object or an array; values as text; empty objects dropped", () => {
    const one = loadConfig(
      { CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH: '{"region":"north","tier":2}' },
      syncSchema,
    );
    expect(one.CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH).toEqual([{ region: "north", tier: "2" }]);
    const many = loadConfig(
      { CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH: '[{"region":"north"},{},{"fleet":true}]' },
      syncSchema,
    );
    expect(many.CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH).toEqual([{ region: "north" }, { fleet: "true" }]);
  });

  it("bad values fail naming the variable", () => {
    for (const [name, value] of [
      ["CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH", "region=north"],
      ["CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH", '[{"region":{"nested":1}}]'],
      ["SYNC_TIME_RESERVE_MS", "-5"],
      ["SYNC_CONTINUE", "never"],
      ["SYNC_KNOWN_GROUPS", "maybe"],
    ] as const) {
      expect(() => loadConfig({ [name]: value }, syncSchema), `${name}=${value}`).toThrow(name);
    }
  });
});
