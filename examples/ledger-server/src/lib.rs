//! The points ledger contract, implemented for real.
