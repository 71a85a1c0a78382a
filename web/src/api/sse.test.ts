import { describe, expect, it } from "vitest";

import { parseSse } from "./sse";

describe("text/event-stream", () => {
  it("answers complete events and keeps the unfinished rest", () => {
    const { events, rest } = parseSse(
      'event: ready\ndata: {"last_sequence": 4}\n\n: ping\n\nid: 5\nevent: notification\ndata: {"title":\ndata: "x"}\n\nid: 6\nda',
    );
    expect(events).toEqual([
      { event: "ready", data: '{"last_sequence": 4}' },
      { event: "notification", data: '{"title":\n"x"}', id: "5" },
    ]);
    expect(rest).toBe("id: 6\nda");
  });

  it("reads CRLF line ends", () => {
    expect(parseSse("event: notification\r\ndata: 1\r\n\r\n").events).toEqual([{ event: "notification", data: "1" }]);
  });
});
