// The app's own commands (src-tauri/src/commands.rs). The plugin's are in tauri-plugin-points-api.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { DesktopService, PointsError } from "tauri-plugin-points-api";

export interface SessionView {
  user: string | null;
  canSwitch: boolean;
}

export interface JobDone {
  service: DesktopService;
  charged: { points: number; balance: number } | null;
  pending: boolean;
  /** The ledger refused the charge for good: the work is done but not paid. */
  refused: PointsError | null;
}

/** An answer of "the app's backend", as it came: the status and the parsed body. */
export interface BackendAnswer {
  status: number;
  body: unknown;
}

export const session = () => invoke<SessionView>("session");
export const signOut = () => invoke<void>("sign_out");
export const signInOther = () => invoke<void>("sign_in_other");
export const topUp = () => invoke<void>("top_up");
export const openWindow = () => invoke<string>("open_window");
export const submitVideo = (duration: number) => invoke<BackendAnswer>("submit_video", { duration });

export function runJob(
  service: DesktopService,
  fail: boolean,
  onProgress: (percent: number) => void,
): Promise<JobDone> {
  const channel = new Channel<{ percent: number }>();
  channel.onmessage = (message) => onProgress(message.percent);
  return invoke<JobDone>("run_job", { service, fail, jobId: crypto.randomUUID(), onProgress: channel });
}

export function onSessionChanged(handler: (view: SessionView) => void): Promise<UnlistenFn> {
  return listen<SessionView>("demo://session-changed", (event) => handler(event.payload));
}
