// Type-level tests of the generated bindings, checked by `npm run check` (tsc): any binding that
// gains, loses or retypes a field, or turns an integer into `bigint`, makes this file fail to
// compile. test/bindings-types.test.ts proves that it does.
import type {
  BalanceChanged,
  Batch,
  ChargeOutcome,
  ChargeReceipt,
  CostCheck,
  DesktopService,
  InsufficientPoints,
  KnownService,
  LowBalance,
  OfflineAllowance,
  OfflineStatus,
  PendingCharges,
  PendingStatus,
  PointBalance,
  PointsError,
  PriceList,
  PricingMode,
  RefusedCharge,
  ServicePrice,
  SessionChanged,
  Transaction,
  TransactionKind,
  TransactionPage,
} from "../src/bindings";

/** `true` only when A and B are the same type (exact keys, exact field types, same optionality). */
export type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
export type Expect<T extends true> = T;

/** `true` when a `bigint` appears anywhere inside T (or in any member of the union T). */
export type HasBigint<T> = true extends BigintIn<T> ? true : false;
type BigintIn<T> = T extends bigint
  ? true
  : T extends readonly (infer U)[]
    ? BigintIn<U>
    : T extends object
      ? true extends { [K in keyof T]-?: BigintIn<T[K]> }[keyof T]
        ? true
        : false
      : false;

/** One object type from an intersection (`{ message } & { kind, ... }` as generated). */
type Flat<T> = { [K in keyof T]: T[K] };
type Kind<K extends PointsError["kind"]> = Flat<Extract<PointsError, { kind: K }>>;

export type PointBalanceIsExact = Expect<
  Equals<
    PointBalance,
    { balance: number; totalRecharged: number; totalConsumed: number; totalExpired: number; seq?: number }
  >
>;

export type ShapesMatchTheIpcDoc = [
  Expect<Equals<DesktopService, "compose" | "subtitle_burn" | "cover_design">>,
  Expect<
    Equals<
      KnownService,
      | "script"
      | "polish"
      | "title"
      | "voice_clone"
      | "tts"
      | "video"
      | "compose"
      | "subtitle_burn"
      | "cover_design"
      | "caption"
      | "auto_align"
    >
  >,
  Expect<Equals<PricingMode, "fixed" | "duration" | "free">>,
  Expect<
    Equals<
      CostCheck,
      { service: string; mode: PricingMode; required: number; balance: number; sufficient: boolean; seq?: number }
    >
  >,
  Expect<
    Equals<
      ChargeReceipt,
      {
        transactionId: string | null;
        service: string;
        points: number;
        balance: number;
        replayed: boolean;
        idempotencyKey: string;
        seq: number | null;
      }
    >
  >,
  Expect<Equals<ServicePrice, { service: string; mode: PricingMode; points: number | null; pointsPerSecond: number | null }>>,
  Expect<Equals<PriceList, { services: Array<ServicePrice> }>>,
  Expect<Equals<TransactionKind, "recharge" | "consume" | "expire">>,
  Expect<
    Equals<
      Transaction,
      {
        id: string;
        kind: TransactionKind;
        points: number;
        balanceAfter: number;
        service: string | null;
        idempotencyKey: string | null;
        reference: string | null;
        createdAt: string;
      }
    >
  >,
  Expect<Equals<TransactionPage, { items: Array<Transaction>; nextCursor: string | null }>>,
  Expect<Equals<Batch, { id: string; points: number; remaining: number; expiresAt: string; createdAt: string }>>,
  Expect<Equals<BalanceChanged, { balance: number; summary: PointBalance; seq: number | null; session: number }>>,
  Expect<Equals<LowBalance, { threshold: number; balance: number; session: number }>>,
  Expect<Equals<OfflineAllowance, { remaining: number; until: string | null }>>,
  Expect<Equals<OfflineStatus, { offline: OfflineAllowance | null; session: number }>>,
  Expect<
    Equals<
      InsufficientPoints,
      { service: string | null; required: number | null; balance: number | null; window: string | null }
    >
  >,
  Expect<Equals<PendingCharges, { count: number; session: number }>>,
  Expect<Equals<SessionChanged, { signedIn: boolean; session: number }>>,
  Expect<
    Equals<
      RefusedCharge,
      { idempotencyKey: string; service: string; recordedAt: number; refusedAt: number; error: PointsError }
    >
  >,
  Expect<
    Equals<
      PendingStatus,
      {
        count: number;
        oldestAgeSeconds: number | null;
        refused: Array<RefusedCharge>;
        signedIn: boolean;
        session: number;
        otherAccounts: number;
      }
    >
  >,
  Expect<
    Equals<
      ChargeOutcome,
      | { status: "acknowledged"; receipt: ChargeReceipt }
      | { status: "pending"; idempotencyKey: string }
      | { status: "refused"; idempotencyKey: string; error: PointsError }
    >
  >,
];

export type ErrorsMatchTheIpcDoc = [
  Expect<
    Equals<
      Kind<"insufficientPoints">,
      { kind: "insufficientPoints"; message: string; service: string | null; required: number | null; balance: number | null }
    >
  >,
  Expect<Equals<Kind<"unauthorized">, { kind: "unauthorized"; message: string }>>,
  Expect<Equals<Kind<"unknownService">, { kind: "unknownService"; message: string; service: string }>>,
  Expect<Equals<Kind<"invalidDuration">, { kind: "invalidDuration"; message: string }>>,
  Expect<Equals<Kind<"notChargeableHere">, { kind: "notChargeableHere"; message: string; service: string }>>,
  Expect<Equals<Kind<"invalidArgument">, { kind: "invalidArgument"; message: string; field: string }>>,
  Expect<Equals<Kind<"network">, { kind: "network"; message: string }>>,
  Expect<Equals<Kind<"timeout">, { kind: "timeout"; message: string }>>,
  Expect<Equals<Kind<"backend">, { kind: "backend"; message: string; status: number; code: string | null }>>,
  Expect<Equals<Kind<"protocol">, { kind: "protocol"; message: string }>>,
  Expect<Equals<Kind<"storage">, { kind: "storage"; message: string }>>,
  Expect<Equals<Kind<"notConfigured">, { kind: "notConfigured"; message: string }>>,
  Expect<Equals<Kind<"offlineAllowanceNone">, { kind: "offlineAllowanceNone"; message: string }>>,
  Expect<Equals<Kind<"offlineAllowanceInvalid">, { kind: "offlineAllowanceInvalid"; message: string }>>,
  Expect<Equals<Kind<"offlineAllowanceExpired">, { kind: "offlineAllowanceExpired"; message: string; until: string }>>,
  Expect<
    Equals<
      Kind<"offlineAllowanceExhausted">,
      { kind: "offlineAllowanceExhausted"; message: string; service: string; required: number; remaining: number }
    >
  >,
  Expect<Equals<Kind<"offlineClockTurnedBack">, { kind: "offlineClockTurnedBack"; message: string; mark: string }>>,
  Expect<
    Equals<
      PointsError["kind"],
      | "insufficientPoints"
      | "unauthorized"
      | "unknownService"
      | "invalidDuration"
      | "notChargeableHere"
      | "invalidArgument"
      | "network"
      | "timeout"
      | "backend"
      | "protocol"
      | "storage"
      | "notConfigured"
      | "offlineAllowanceNone"
      | "offlineAllowanceInvalid"
      | "offlineAllowanceExpired"
      | "offlineAllowanceExhausted"
      | "offlineClockTurnedBack"
    >
  >,
];

export type NoBigintAnywhere = Expect<
  Equals<
    HasBigint<
      | PointBalance
      | CostCheck
      | ChargeReceipt
      | ServicePrice
      | PriceList
      | Transaction
      | TransactionPage
      | Batch
      | BalanceChanged
      | InsufficientPoints
      | PendingCharges
      | OfflineStatus
      | SessionChanged
      | RefusedCharge
      | PendingStatus
      | ChargeOutcome
      | PointsError
    >,
    false
  >
>;

// The detector itself: it must see a bigint at any depth.
export type DetectorWorks = [
  Expect<Equals<HasBigint<{ a: { b: Array<bigint | null> } }>, true>>,
  Expect<Equals<HasBigint<{ a: number } | { b: bigint }>, true>>,
  Expect<Equals<HasBigint<{ a: number | null; b: string[] }>, false>>,
];
