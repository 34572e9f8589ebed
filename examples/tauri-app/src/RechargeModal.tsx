import { useState } from "react";
import type { RechargeDialog } from "tauri-plugin-points-api";
import { useLocale } from "tauri-plugin-points-api/react";
import { topUp } from "./app";
import { TEXTS, describeError } from "./i18n";

/**
 * The recharge dialog, driven by the point store's `recharge` state (its texts included). It
 * closes when the user cancels, or by itself when the balance covers the refusal.
 */
export function RechargeModal({ recharge, onClose }: { recharge: RechargeDialog; onClose: () => void }) {
  const locale = useLocale();
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<{ error: unknown } | null>(null);
  if (!recharge.open || recharge.texts === null) return null;
  const { title, message, cancel } = recharge.texts;

  async function buy() {
    setBusy(true);
    setFailure(null);
    try {
      // The store closes the dialog itself once a summary covers the refusal (recharge.satisfied):
      // this top-up's, or one made in another window or outside the app.
      await topUp();
    } catch (e) {
      setFailure({ error: e });
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="backdrop">
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby="recharge-title" data-testid="recharge-modal">
        <h2 id="recharge-title" data-testid="recharge-title">
          {title}
        </h2>
        <p data-testid="recharge-message">{message}</p>
        {failure && (
          <p className="error" data-testid="recharge-error">
            {describeError(failure.error, locale)}
          </p>
        )}
        <div className="row">
          <button className="primary" data-testid="recharge-top-up" disabled={busy} onClick={buy}>
            {busy ? TEXTS[locale].toppingUp : TEXTS[locale].topUp}
          </button>
          <button data-testid="recharge-close" onClick={onClose}>
            {cancel}
          </button>
        </div>
      </div>
    </div>
  );
}
