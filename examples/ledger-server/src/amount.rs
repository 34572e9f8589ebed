//! Amounts and their bounds: the one home of the range every amount, balance and total of the
//! ledger stays within (`docs/PRICING.md`). The money rules (`ledger`) and the price table
//! (`pricing`) both take it from here.

/// The largest amount, balance or total the ledger holds, either sign: 2^53 − 1, the largest
/// integer a JavaScript number holds exactly.
pub const MAX_AMOUNT: i64 = (1 << 53) - 1;

/// `value` when it is within ±[`MAX_AMOUNT`]: the checked result of an arithmetic step on
/// amounts, `None` when it overflowed or left the range.
pub fn bounded(value: Option<i64>) -> Option<i64> {
    value.filter(|v| (-MAX_AMOUNT..=MAX_AMOUNT).contains(v))
}
