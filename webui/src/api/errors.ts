/**
 * One error type for every API call: the service's own `{"error": code, "detail": ...}` answer
 * (with studio's located `problems` for an invalid workflow or document), or what stood in its
 * place (a gateway page, a network failure).
 */

/** A located problem of a workflow or of a YAML document (studio's `ProblemOut`). */
export interface Problem {
  code: string;
  message: string;
  step_id: string | null;
  input: string | null;
  line?: number | null;
  path?: string | null;
}

export interface ApiErrorInit {
  status: number;
  code: string;
  detail: unknown;
  problems?: Problem[];
  /** Other keys of the answer (e.g. the runner's `run_id` on a failed or timed-out run). */
  extra?: Record<string, unknown>;
}

export class ApiError extends Error {
  /** The HTTP status (0 when the service could not be reached). */
  readonly status: number;
  /** The service's stable code, e.g. `not_found`, `invalid_input`, `invalid_workflow`. */
  readonly code: string;
  /** The service's detail, as it sent it (usually a sentence naming the field). */
  readonly detail: unknown;
  readonly problems: Problem[];
  readonly extra: Record<string, unknown>;

  constructor(init: ApiErrorInit) {
    super(describeDetail(init.detail) || defaultMessage(init.status, init.code));
    this.name = "ApiError";
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.problems = init.problems ?? [];
    this.extra = init.extra ?? {};
  }

  get isUnauthorized(): boolean {
    return this.status === 401;
  }

  /** The error from a failed answer's body, already parsed (JSON) or as text. */
  static from(status: number, body: unknown, statusText = ""): ApiError {
    if (isRecord(body) && typeof body.error === "string") {
      const { error, detail, problems, ...extra } = body;
      return new ApiError({
        status,
        code: error,
        detail: detail ?? "",
        problems: Array.isArray(problems) ? problems.filter(isProblem) : [],
        extra,
      });
    }
    const text = typeof body === "string" ? body.trim() : "";
    // A page from the gateway or a proxy (HTML) says nothing a person can use: keep the status.
    const detail = text && !text.startsWith("<") && text.length <= 500 ? text : statusText;
    return new ApiError({ status, code: `http_${status}`, detail });
  }

  /** The error of a failed answer, reading its body (JSON or text). */
  static async fromResponse(response: Response): Promise<ApiError> {
    let body: unknown = "";
    try {
      const text = await response.text();
      body = text;
      if ((response.headers.get("content-type") ?? "").includes("json") && text) {
        body = JSON.parse(text) as unknown;
      }
    } catch {
      // keep what was read: the status still says what happened
    }
    return ApiError.from(response.status, body, response.statusText);
  }

  static network(cause: unknown): ApiError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new ApiError({
      status: 0,
      code: "network_error",
      detail: `the platform could not be reached (${reason})`,
    });
  }
}

export function isApiError(value: unknown): value is ApiError {
  return value instanceof ApiError;
}

/** Any thrown value as a sentence for a person. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return describeDetail(error) || "unexpected error";
}

/** A detail (string, list or object) as one readable sentence. */
export function describeDetail(detail: unknown): string {
  if (detail === null || detail === undefined) return "";
  if (typeof detail === "string") return detail;
  if (typeof detail === "number" || typeof detail === "boolean") return String(detail);
  if (Array.isArray(detail)) return detail.map(describeDetail).filter(Boolean).join("; ");
  if (isRecord(detail)) {
    if (typeof detail.message === "string") return detail.message;
    return Object.entries(detail)
      .map(([key, value]) => `${key}: ${describeDetail(value)}`)
      .join("; ");
  }
  return typeof detail === "bigint" ? detail.toString() : "";
}

/** Where a problem is: `file, line 3, step s1, input x`. */
export function problemLocation(p: Problem): string {
  const where: string[] = [];
  if (p.path) where.push(p.path);
  if (p.line) where.push(`line ${p.line}`);
  if (p.step_id) where.push(`step ${p.step_id}`);
  if (p.input) where.push(`input ${p.input}`);
  return where.join(", ");
}

function defaultMessage(status: number, code: string): string {
  if (status === 0) return "the platform could not be reached";
  return `the request failed (${status}${code && !code.startsWith("http_") ? ` ${code}` : ""})`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isProblem(value: unknown): value is Problem {
  return isRecord(value) && typeof value.message === "string" && typeof value.code === "string";
}
