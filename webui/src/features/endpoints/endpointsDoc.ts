/** The runner's per-project OpenAPI document of HTTP endpoints, read for display. */

export interface EndpointField {
  name: string;
  type: string;
  required: boolean;
  description: string;
  enum: string[];
}

export interface EndpointDoc {
  path: string;
  summary: string;
  workflowName: string;
  media: string[];
  fields: EndpointField[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function typeOf(schema: Obj): string {
  if (Array.isArray(schema.enum)) return "enum";
  if (schema.format === "binary") return "file";
  if (schema.format === "password") return "password";
  return typeof schema.type === "string" ? schema.type : "any";
}

export function readEndpoints(doc: unknown): EndpointDoc[] {
  if (!isObj(doc) || !isObj(doc.paths)) return [];
  const out: EndpointDoc[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!isObj(item) || !isObj(item.post)) continue;
    const op = item.post;
    const content = isObj(op.requestBody) && isObj(op.requestBody.content) ? op.requestBody.content : {};
    const first = Object.values(content).find(isObj);
    const schema = first && isObj(first.schema) ? first.schema : {};
    const props = isObj(schema.properties) ? schema.properties : {};
    const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : []);
    out.push({
      path,
      summary: typeof op.summary === "string" ? op.summary : "",
      workflowName: decodeURIComponent(path.split("/").pop() ?? ""),
      media: Object.keys(content),
      fields: Object.entries(props).map(([name, s]) => {
        const field = isObj(s) ? s : {};
        return {
          name,
          type: typeOf(field),
          required: required.has(name),
          description: typeof field.description === "string" ? field.description : "",
          enum: Array.isArray(field.enum) ? field.enum.map(String) : [],
        };
      }),
    });
  }
  return out;
}
