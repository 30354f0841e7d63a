import "@testing-library/jest-dom/vitest";

import { cleanup, configure } from "@testing-library/react";
import { afterAll, afterEach, beforeAll, vi } from "vitest";

import { resetSessionForTests } from "../src/api/session";
import { server } from "./server";

// `findBy*` and `waitFor` wait up to 5 s: the suite runs beside other work on small machines,
// where a lazy route's first import alone can take more than the default second.
configure({ asyncUtilTimeout: 5000 });

// What jsdom lacks and Mantine uses.
Object.defineProperty(window, "matchMedia", {
  writable: true,
  value: vi.fn().mockImplementation((query: string) => ({
    matches: false,
    media: query,
    onchange: null,
    addListener: vi.fn(),
    removeListener: vi.fn(),
    addEventListener: vi.fn(),
    removeEventListener: vi.fn(),
    dispatchEvent: vi.fn(),
  })),
});
class ResizeObserverStub {
  observe(): void {}
  unobserve(): void {}
  disconnect(): void {}
}
globalThis.ResizeObserver = ResizeObserverStub;
window.HTMLElement.prototype.scrollIntoView = vi.fn();
// What @xyflow/react reads a node's zoom from when it measures its handles again (the mock its
// testing guide gives).
class DOMMatrixReadOnlyStub {
  m22: number;
  constructor(transform?: string) {
    const scale = transform?.match(/scale\(([1-9.])\)/)?.[1];
    this.m22 = scale !== undefined ? Number(scale) : 1;
  }
}
Object.defineProperty(window, "DOMMatrixReadOnly", { writable: true, value: DOMMatrixReadOnlyStub });
if (!("fonts" in document)) {
  Object.defineProperty(document, "fonts", {
    value: { addEventListener: vi.fn(), removeEventListener: vi.fn(), ready: Promise.resolve() },
  });
}
window.HTMLElement.prototype.scrollTo = vi.fn();

beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => {
  cleanup();
  server.resetHandlers();
  resetSessionForTests(null);
  sessionStorage.clear();
  localStorage.clear();
});
afterAll(() => server.close());
