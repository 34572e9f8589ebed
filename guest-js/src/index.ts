export type * from "./bindings";
export {
  COMMANDS,
  PLUGIN_NAME,
  charge,
  checkCost,
  clearSessionToken,
  getBalance,
  getPrices,
  listBatches,
  listTransactions,
  setSessionToken,
  type ChargeOptions,
  type ListTransactionsOptions,
  type ServiceName,
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
export { EVENTS, onBalanceChanged, onInsufficientPoints, onPendingChanged, type UnlistenFn } from "./events";
export { PAYMENT_REQUIRED, insufficientPointsFromBody, insufficientPointsFromResponse } from "./backend";
export {
  createPointStore,
  getPointStore,
  type PointState,
  type PointStore,
  type PointStoreError,
  type PointStoreOptions,
  type RechargeDialog,
} from "./store";
