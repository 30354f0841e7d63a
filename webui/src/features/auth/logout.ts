import { api } from "../../api/client";
import { endSession, getToken } from "../../api/session";

/** Revokes the access token (whatever the answer, the session ends here). */
export async function logout(): Promise<void> {
  if (getToken()) {
    await api.authorization.POST("/authorization/v1/logout").catch(() => undefined);
  }
  endSession();
}
