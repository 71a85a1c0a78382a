// Server-Sent Events over fetch: EventSource cannot send the Authorization header, and the
// access token must not travel in a URL.

import { session } from "./session";

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** Splits a buffer into complete events; answers them and the unfinished rest (text/event-stream). */
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const normalized = buffer.replace(/\r\n?/g, "\n");
  const blocks = normalized.split("\n\n");
  const rest = blocks.pop() ?? "";
  const events: SseEvent[] = [];
  for (const block of blocks) {
    const event: SseEvent = { event: "message", data: "" };
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue; // comments are keep-alive pings
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event.event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") event.id = value;
    }
    if (data.length === 0 && event.event === "message") continue;
    event.data = data.join("\n");
    events.push(event);
  }
  return { events, rest };
}

/** Follows a stream until `signal` aborts, reconnecting (with Last-Event-ID) after a drop. */
export async function follow(url: string, onEvent: (event: SseEvent) => void, signal: AbortSignal): Promise<void> {
  let lastId: string | undefined;
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await session.authorizedFetch(new Request(url, { headers, signal }));
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { events, rest } = parseSse(buffer + value);
        buffer = rest;
        for (const event of events) {
          if (event.id) lastId = event.id;
          onEvent(event);
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 30_000);
  }
}
