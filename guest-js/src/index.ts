export type * from "./bindings";
export {
  COMMANDS,
  PLUGIN_NAME,
  charge,
  checkCost,
  clearSessionToken,
  dismissRefused,
  getBalance,
  getPending,
  getPrices,
  idempotencyKeyOf,
  listBatches,
  listTransactions,
  newIdempotencyKey,
  retryRefused,
  setSessionToken,
  syncPending,
  type ChargeOptions,
  type ListTransactionsOptions,
  type ServiceName,
  type SessionOptions,
} from "./commands";
export {
  POINTS_ERROR_KINDS,
  errorMessage,
  isInsufficientPoints,
  isPointsError,
  isPointsErrorKind,
  type InsufficientPointsError,
  type PointsErrorKind,
  type PointsErrorOf,
} from "./errors";
export {
  EVENTS,
  onBalanceChanged,
  onChargeRefused,
  onInsufficientPoints,
  onPendingChanged,
  onSessionChanged,
  type UnlistenFn,
} from "./events";
export {
  PAYMENT_REQUIRED,
  insufficientPointsFromBody,
  insufficientPointsFromResponse,
  type RefusalFigures,
} from "./backend";
export {
  createPointStore,
  getPointStore,
  type PointState,
  type PointStore,
  type PointStoreError,
  type PointStoreOptions,
  type RechargeDialog,
} from "./store";
