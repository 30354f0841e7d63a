import { describe, expect, it } from "vitest";

import { io, TRIGGER_FIELDS } from "../../../test/fixtures/studio";
import { initialValues, runFields, runRequest, validateRun } from "./runForm";

describe("runFields", () => {
  it("maps each trigger field to a control, required unless optional or defaulted", () => {
    const fields = runFields(TRIGGER_FIELDS);
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ["title", "text", true],
      ["mode", "enum", false],
      ["count", "integer", false],
      ["ratio", "float", false],
      ["verbose", "boolean", true],
      ["data", "file", true],
      ["notes", "longtext", false],
    ]);
    expect(fields[0]).toMatchObject({ label: "Title", help: "What the report is called" });
    expect(fields[1]?.options).toEqual(["fast", "exact"]);
  });

  it("keeps a type it does not know as JSON", () => {
    expect(runFields([io({ name: "x", type: "dict" as never })])[0]?.kind).toBe("json");
  });
});

describe("initialValues", () => {
  it("starts from the defaults", () => {
    expect(initialValues(runFields(TRIGGER_FIELDS))).toEqual({
      title: "",
      mode: "fast",
      count: "",
      ratio: 0.5,
      verbose: false,
      data: null,
      notes: "",
    });
  });

  it("ignores a default that is not one of the enum's values", () => {
    const fields = runFields([io({ name: "m", type: "enum", enum_values: ["a"], has_default: true, default: "zzz" })]);
    expect(initialValues(fields).m).toBeNull();
  });
});

describe("validateRun", () => {
  const fields = runFields(TRIGGER_FIELDS);

  it("names each missing required field, files included", () => {
    expect(validateRun(fields, initialValues(fields))).toEqual({ title: "Required", data: "Choose a file" });
  });

  it("checks numbers and enum values", () => {
    const values = { ...initialValues(fields), title: "t", data: new File(["x"], "d.csv"), count: "1.5", ratio: "abc", mode: "slow" };
    expect(validateRun(fields, values)).toEqual({ count: "A whole number", ratio: "A number", mode: "One of fast, exact" });
  });
});

describe("runRequest", () => {
  it("sends JSON, leaving empty optional fields to their defaults", () => {
    const fields = runFields(TRIGGER_FIELDS.filter((f) => f.type !== "file"));
    const request = runRequest(fields, { ...initialValues(fields), title: "Q3", count: 7 });
    expect(request).toEqual({ kind: "json", body: { title: "Q3", mode: "fast", count: 7, ratio: 0.5, verbose: false } });
  });

  it("sends multipart/form-data as soon as a field is a file", () => {
    const fields = runFields(TRIGGER_FIELDS);
    const file = new File(["a,b\n1,2\n"], "numbers.csv", { type: "text/csv" });
    const request = runRequest(fields, { ...initialValues(fields), title: "Q3", data: file, verbose: true });
    expect(request.kind).toBe("multipart");
    const form = request.body as FormData;
    expect(form.get("title")).toBe("Q3");
    expect(form.get("verbose")).toBe("true");
    expect(form.get("ratio")).toBe("0.5");
    expect(form.has("count")).toBe(false);
    expect((form.get("data") as File).name).toBe("numbers.csv");
  });
});
