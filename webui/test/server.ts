import { setupServer } from "msw/node";

/** The platform's HTTP APIs as the tests answer them (each test adds its handlers). */
export const server = setupServer();
