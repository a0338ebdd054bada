/**
 * Export templates and their detection from the header signature (DESIGN.md "Headers vary"): raw column
 * names (`dim_event_user_id`), display names (`User Id`), `Dimension.attribute` forms (`User.slab_name`),
 * any case, spaces or underscores, and a configured column map for per-schedule renames.
 */

export type TemplateName = "points" | "points_redemption_summary" | "members" | "rewards";

export interface FieldSpec {
  /** Canonical field name used by the normalizer. */
  name: string;
  /** Header forms, compared after `normHeader` (raw names first). */
  aliases: readonly string[];
}

export interface TemplateSpec {
  name: TemplateName;
  fields: readonly FieldSpec[];
  /** Fields that must all be present for the header to be this template. */
  signature: readonly string[];
}

const f = (name: string, ...aliases: string[]): FieldSpec => ({ name, aliases: [name, ...aliases] });

const userId = f("dim_event_user_id", "user_id", "event_user_id", "customer_id", "user");
const eventDate = f("dim_event_date_id", "event_date", "event_date_id", "date");
const autoUpdate = f("auto_update_time", "auto_update_time_id", "last_updated_time", "auto_update");

export const TEMPLATES: readonly TemplateSpec[] = [
  {
    name: "rewards",
    fields: [
      f("reward_transaction_id", "transaction_id", "reward_id", "event_id", "id"),
      userId,
      eventDate,
      f("group_loyalty_redemption", "group_redemption_flag"),
      f("intouch_points_deducted", "points_deducted"),
      autoUpdate,
    ],
    signature: ["group_loyalty_redemption", "reward_transaction_id", "dim_event_user_id"],
  },
  {
    name: "points_redemption_summary",
    fields: [
      f("event_id", "redemption_summary_id"),
      f("points_redeemed", "redeemed_points_amount"),
      f("dim_redemption_type_id", "redemption_type", "redemption_type_id"),
      userId,
      eventDate,
      f("points_redemption_time", "redemption_time"),
      autoUpdate,
      f("point_category_id", "points_category_id"),
    ],
    signature: ["event_id", "points_redeemed", "dim_redemption_type_id", "dim_event_user_id"],
  },
  {
    name: "points",
    fields: [
      f("event_id", "points_event_id"),
      userId,
      eventDate,
      f("allocated_points", "points_allocated", "awarded_points"),
      f("deducted_points", "points_deducted"),
      f("dim_points_event_type_id", "points_event_type", "points_event_type_id", "event_type"),
      f("dim_deduction_type_id", "deduction_type", "deduction_type_id"),
      f("event_name", "points_promotion_event_name", "promotion_event_name"),
      f("dim_latest_updated_date_id", "latest_updated_date", "latest_updated_date_id"),
      f("dim_latest_updated_time_id", "latest_updated_time", "latest_updated_time_id"),
      autoUpdate,
    ],
    signature: ["event_id", "dim_event_user_id", "allocated_points", "deducted_points"],
  },
  {
    name: "members",
    fields: [
      userId,
      f("loyalty_points", "current_points", "points_balance"),
      f("lifetime_points"),
      f("lifetime_purchased", "lifetime_purchases", "lifetime_purchase"),
      f("slab_name", "tier", "tier_name", "current_slab"),
      autoUpdate,
    ],
    signature: ["dim_event_user_id", "loyalty_points", "lifetime_points"],
  },
];

/** `User.Slab Name` -> `slabname`: the attribute after the last dot, lower case, letters and digits only. */
export function normHeader(h: string): string {
  const dot = h.lastIndexOf(".");
  const attr = dot >= 0 ? h.slice(dot + 1) : h;
  return attr.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** Display forms that drop the `dim_` prefix and `_id` suffix (`dim_event_user_id` -> `User Id` -> `userid`). */
function headerForms(alias: string): string[] {
  const n = normHeader(alias);
  const out = [n];
  if (n.startsWith("dim")) out.push(n.slice(3));
  return out;
}

export interface DetectedTemplate {
  template: TemplateSpec;
  /** field name -> column index */
  columns: Map<string, number>;
  /** header columns that no field uses (kept for the record, ignored) */
  unused: string[];
}

export type ColumnMap = Readonly<Record<string, string>>;

/**
 * Detect the template of a header. Returns the template whose signature fields are all present; when
 * several match, the one with the most matched fields. Null when none matches.
 */
export function detectTemplate(
  header: readonly string[],
  columnMap: ColumnMap = {},
): DetectedTemplate | null {
  const mapped = new Map<string, string>();
  for (const [from, to] of Object.entries(columnMap)) mapped.set(normHeader(from), to);
  const normalized = header.map((h) => {
    const m = mapped.get(normHeader(h));
    return normHeader(m ?? h);
  });
  let best: DetectedTemplate | null = null;
  for (const template of TEMPLATES) {
    const columns = new Map<string, number>();
    for (const field of template.fields) {
      const forms = field.aliases.flatMap(headerForms);
      // Exact raw-name match first, then the other forms in alias order.
      for (const form of forms) {
        const idx = normalized.indexOf(form);
        if (idx >= 0 && ![...columns.values()].includes(idx)) {
          columns.set(field.name, idx);
          break;
        }
      }
    }
    if (!template.signature.every((s) => columns.has(s))) continue;
    if (best === null || columns.size > best.columns.size) {
      const used = new Set(columns.values());
      best = { template, columns, unused: header.filter((_, i) => !used.has(i)) };
    }
  }
  return best;
}

/** A cell no column name looks like: an email, a phone number, a long number. */
const DATA_LIKE = /@|\d{6,}|^\s*\+\d/;

/** A short, safe description of a header for error messages (column names are not personal data). */
export function describeHeader(header: readonly string[]): string {
  // A headerless file's first line is a row: its cells (names, mobiles, emails) must not reach logs.
  if (header.some((h) => DATA_LIKE.test(h)))
    return `${header.length} columns; the first line looks like data, not a header (values not shown)`;
  const shown = header.slice(0, 12).map((h) => h.slice(0, 40));
  return shown.join(", ") + (header.length > 12 ? `, ... (${header.length} columns)` : "");
}
