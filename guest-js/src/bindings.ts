// The plugin's types, generated from the Rust crate by ts-rs (one file per type in this package's
// `bindings/` folder). They are re-exported as they are: this package never redefines them.
export type { BalanceChanged } from "../bindings/BalanceChanged";
export type { Batch } from "../bindings/Batch";
export type { ChargeOutcome } from "../bindings/ChargeOutcome";
export type { ChargeReceipt } from "../bindings/ChargeReceipt";
export type { CostCheck } from "../bindings/CostCheck";
export type { DesktopService } from "../bindings/DesktopService";
export type { InsufficientPoints } from "../bindings/InsufficientPoints";
export type { KnownService } from "../bindings/KnownService";
export type { LowBalance } from "../bindings/LowBalance";
export type { OfflineAllowance } from "../bindings/OfflineAllowance";
export type { OfflineStatus } from "../bindings/OfflineStatus";
export type { PendingCharges } from "../bindings/PendingCharges";
export type { PendingStatus } from "../bindings/PendingStatus";
export type { PointBalance } from "../bindings/PointBalance";
export type { PointsError } from "../bindings/PointsError";
export type { PriceList } from "../bindings/PriceList";
export type { PricingMode } from "../bindings/PricingMode";
export type { RefusedCharge } from "../bindings/RefusedCharge";
export type { ServicePrice } from "../bindings/ServicePrice";
export type { SessionChanged } from "../bindings/SessionChanged";
export type { Transaction } from "../bindings/Transaction";
export type { TransactionKind } from "../bindings/TransactionKind";
export type { TransactionPage } from "../bindings/TransactionPage";
