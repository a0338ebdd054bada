/** Members (customer_summary) snapshot rows: one per user, values in thousandths. */

import type { MembersColumn } from "./columns.ts";
import { writeDecimal } from "./columns.ts";
import { amount, type Style, style } from "./events.ts";
import type { Rng } from "./rng.ts";
import type { SampleUser } from "./world.ts";

export interface MemberRow {
  user: SampleUser;
  loyaltyPoints: bigint;
  lifetimePoints: bigint;
  lifetimePurchased: bigint;
  redeemed: bigint;
  expired: bigint;
  visits: number;
  totalBill: bigint;
  autoUpdateS: number;
  style: Style;
}

export function memberRow(rng: Rng, user: SampleUser, autoUpdateS: number): MemberRow {
  const lifetimePoints = amount(rng, 60_000);
  const redeemed = lifetimePoints / 3n;
  const expired = lifetimePoints / 10n;
  const loyaltyPoints = rng.chance(0.05) ? -amount(rng, 300) : lifetimePoints - redeemed - expired;
  return {
    user,
    loyaltyPoints,
    lifetimePoints,
    lifetimePurchased: BigInt(rng.int(0, 9_000_000)) * 10n,
    redeemed,
    expired,
    visits: rng.int(0, 400),
    totalBill: BigInt(rng.int(0, 9_000_000)) * 10n,
    autoUpdateS,
    style: style(rng),
  };
}

export function memberFields(r: MemberRow): Record<MembersColumn, string> {
  return {
    dim_event_user_id: r.user.id,
    dim_event_date_id: r.user.registered,
    loyalty_id: r.user.loyaltyId,
    loyalty_points: writeDecimal(r.loyaltyPoints, r.style),
    lifetime_points: writeDecimal(r.lifetimePoints, r.style),
    lifetime_purchased: writeDecimal(r.lifetimePurchased, r.style),
    redeemed_points: writeDecimal(r.redeemed, r.style),
    expired_points: writeDecimal(r.expired, r.style),
    number_of_visits: String(r.visits),
    total_bill_amount: writeDecimal(r.totalBill, r.style),
    "User.slab_name": r.user.slabName,
    "User.slab_number": String(r.user.slabNumber),
    auto_update_time: String(r.autoUpdateS),
  };
}
