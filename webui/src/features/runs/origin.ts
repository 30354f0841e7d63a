/** How a run was started, as the runner records it (`origin`), in words. */
const ORIGINS: Record<string, { short: string; long: string }> = {
  http: { short: "endpoint call", long: "an endpoint call" },
  user_api: { short: "user API call", long: "a call of the project's user API" },
  form: { short: "form", long: "a form submission" },
  timer: { short: "timer", long: "its timer" },
  trigger: { short: "trigger", long: "its trigger" },
};

export function originText(origin: string, form: "short" | "long" = "short"): string {
  return ORIGINS[origin]?.[form] ?? origin;
}
