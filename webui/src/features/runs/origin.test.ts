import { describe, expect, it } from "vitest";

import { originText } from "./origin";

describe("originText", () => {
  it("names each way a run starts, and shows an unknown origin as it is", () => {
    expect(originText("http")).toBe("endpoint call");
    expect(originText("form", "long")).toBe("a form submission");
    expect(originText("user_api")).toBe("user API call");
    expect(originText("timer", "long")).toBe("its timer");
    expect(originText("trigger")).toBe("trigger");
    expect(originText("webhook")).toBe("webhook");
  });
});
