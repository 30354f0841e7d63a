import { useState } from "react";
import { createBrowserRouter, RouterProvider } from "react-router";

import { onSessionEnd } from "./api/session";
import { Providers } from "./Providers";
import { createQueryClient } from "./queryClient";
import { routes } from "./routes";

const router = createBrowserRouter(routes);

export function App() {
  const [client] = useState(() => {
    const c = createQueryClient();
    // Another user's data must not outlive the session.
    onSessionEnd(() => c.clear());
    return c;
  });
  return (
    <Providers client={client}>
      <RouterProvider router={router} />
    </Providers>
  );
}
