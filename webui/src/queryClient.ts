import { QueryClient } from "@tanstack/react-query";

import { ApiError } from "./api/errors";

/** A 4xx will answer the same again: only unreachable services and 5xx are retried. */
export function shouldRetry(failureCount: number, error: unknown): boolean {
  if (error instanceof ApiError && error.status >= 400 && error.status < 500) return false;
  return failureCount < 2;
}

export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        retry: shouldRetry,
        staleTime: 2000,
        refetchOnWindowFocus: true,
      },
      mutations: { retry: false },
    },
  });
}
