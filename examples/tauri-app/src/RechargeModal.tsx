import { useState } from "react";
import type { RechargeDialog } from "tauri-plugin-points-api";
import { messageOf, topUp } from "./app";

/** The recharge dialog, driven by the point store's `recharge` state. */
export function RechargeModal({ recharge, onClose }: { recharge: RechargeDialog; onClose: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!recharge.open) return null;

  async function buy() {
    setBusy(true);
    setError(null);
    try {
      await topUp();
      onClose();
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="backdrop">
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby="recharge-title" data-testid="recharge-modal">
        <h2 id="recharge-title">Not enough points</h2>
        <p>
          {recharge.service ? <>This {recharge.service.replace("_", " ")} needs </> : <>This needs </>}
          <strong data-testid="recharge-required">{recharge.required ?? "?"}</strong> points; you have{" "}
          <strong data-testid="recharge-balance">{recharge.balance ?? "?"}</strong>.
        </p>
        {error && <p className="error">{error}</p>}
        <div className="row">
          <button className="primary" data-testid="recharge-top-up" disabled={busy} onClick={buy}>
            {busy ? "Topping up…" : "Top up 50"}
          </button>
          <button data-testid="recharge-close" onClick={onClose}>
            Close
          </button>
        </div>
      </div>
    </div>
  );
}
