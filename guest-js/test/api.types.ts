// Type-level tests of the API's signatures, checked by `npm run check` (tsc): a command wrapper or
// store method whose arguments or answer change makes this file fail to compile.
import {
  charge,
  dismissRefused,
  getOffline,
  idempotencyKeyOf,
  localizedOffline,
  onOfflineChanged,
  newIdempotencyKey,
  retryRefused,
  type ChargeOptions,
  type ChargeOutcome,
  type DesktopService,
  type Locale,
  type OfflineAllowance,
  type OfflineStatus,
  type PendingStatus,
  type PointState,
  type PointStore,
  type PointsErrorKind,
  type PointsMessages,
  type RechargeDialog,
  type RechargeTexts,
  type UnlistenFn,
} from "../src";
import type { UsePoints, useOffline } from "../src/react";
import type { Equals, Expect } from "./bindings.types";

export type CommandsMatchTheIpcDoc = [
  // charge resolves with what became of the charge, not a bare receipt.
  Expect<Equals<typeof charge, (service: DesktopService, options?: ChargeOptions) => Promise<ChargeOutcome>>>,
  Expect<Equals<typeof retryRefused, (idempotencyKey: string) => Promise<PendingStatus>>>,
  Expect<Equals<typeof dismissRefused, (idempotencyKey: string) => Promise<PendingStatus>>>,
  Expect<Equals<typeof newIdempotencyKey, () => string>>,
  Expect<Equals<typeof idempotencyKeyOf, (outcome: ChargeOutcome) => string>>,
  Expect<Equals<typeof getOffline, () => Promise<OfflineStatus>>>,
  Expect<Equals<typeof onOfflineChanged, (handler: (payload: OfflineStatus) => void) => Promise<UnlistenFn>>>,
];

export type StoreMatchesTheCommands = [
  Expect<Equals<PointStore["charge"], (service: DesktopService, options?: ChargeOptions) => Promise<ChargeOutcome>>>,
  Expect<Equals<PointStore["retryRefused"], (idempotencyKey: string) => Promise<PendingStatus>>>,
  Expect<Equals<PointStore["dismissRefused"], (idempotencyKey: string) => Promise<PendingStatus>>>,
  Expect<Equals<PointState["pendingOtherAccounts"], number>>,
  Expect<Equals<UsePoints["charge"], PointStore["charge"]>>,
  Expect<Equals<UsePoints["retryRefused"], PointStore["retryRefused"]>>,
  Expect<Equals<UsePoints["dismissRefused"], PointStore["dismissRefused"]>>,
  Expect<Equals<UsePoints["pendingOtherAccounts"], number>>,
  Expect<Equals<PointState["offline"], OfflineAllowance | null>>,
  Expect<Equals<PointStore["onOffline"], (listener: (offline: OfflineAllowance | null) => void) => () => void>>,
  Expect<Equals<UsePoints["onOffline"], PointStore["onOffline"]>>,
  Expect<Equals<typeof useOffline, (store?: PointStore) => OfflineAllowance | null>>,
  Expect<Equals<typeof localizedOffline, (allowance: OfflineAllowance, locale?: Locale) => string>>,
];

export type MessagesMatchTheBindings = [
  // One text per error kind of the generated union, no more, no less.
  Expect<Equals<keyof PointsMessages["errors"], PointsErrorKind>>,
  Expect<Equals<RechargeDialog["texts"], RechargeTexts | null>>,
];
