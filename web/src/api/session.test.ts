import { describe, expect, it } from "vitest";

import { Session } from "./session";

// A gateway stand-in: the session cookie is a counter; each refresh rotates it.
function fakeGateway(options: { accessTtl?: number; refreshFails?: boolean } = {}) {
  const calls: string[] = [];
  let issued = 0;
  let clock = 0;
  const answer = () =>
    new Response(JSON.stringify({ access_token: `access-${++issued}`, expires_in: options.accessTtl ?? 600 }), {
      status: 200,
    });
  const fetchStub = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(new URL(String(input), "http://console.test"), init);
    const path = new URL(request.url).pathname;
    calls.push(`${request.method} ${path} ${request.headers.get("authorization") ?? ""}`.trim());
    if (path === "/api/v1/auth/session" && request.method === "POST") return answer();
    if (path === "/api/v1/auth/session/refresh") {
      return options.refreshFails ? new Response("{}", { status: 401 }) : answer();
    }
    if (path === "/api/v1/auth/session" && request.method === "DELETE") return new Response(null, { status: 204 });
    // the API: only the newest access token is accepted
    return request.headers.get("authorization") === `Bearer access-${issued}`
      ? new Response("{}", { status: 200 })
      : new Response("{}", { status: 401 });
  };
  const session = new Session({ fetch: fetchStub as typeof fetch, now: () => clock, lock: (run) => run() });
  return { session, calls, advance: (ms: number) => (clock += ms) };
}

const me = () => new Request("http://console.test/api/v1/me");

describe("the browser session", () => {
  it("keeps the access token in memory and sends it", async () => {
    const { session, calls } = fakeGateway();
    await session.signIn("li.wei", "pw");
    expect(session.accessToken).toBe("access-1");
    expect((await session.authorizedFetch(me())).status).toBe(200);
    expect(calls.at(-1)).toBe("GET /api/v1/me Bearer access-1");
  });

  it("a reload (no token in memory) refreshes from the cookie first", async () => {
    const { session, calls } = fakeGateway();
    expect((await session.authorizedFetch(me())).status).toBe(200);
    expect(calls).toEqual(["POST /api/v1/auth/session/refresh", "GET /api/v1/me Bearer access-1"]);
  });

  it("refreshes an access token about to expire before using it", async () => {
    const { session, calls, advance } = fakeGateway({ accessTtl: 60 });
    await session.signIn("li.wei", "pw");
    advance(45_000);
    expect((await session.authorizedFetch(me())).status).toBe(200);
    expect(calls.slice(1)).toEqual(["POST /api/v1/auth/session/refresh", "GET /api/v1/me Bearer access-2"]);
  });

  it("a 401 (token revoked or expired early) refreshes once and retries", async () => {
    const { session, calls } = fakeGateway();
    await session.signIn("li.wei", "pw");
    await session.refresh(); // elsewhere: the gateway now accepts only access-2
    (session as unknown as { token: string }).token = "access-1";
    const response = await session.authorizedFetch(new Request("http://console.test/api/v1/me", { method: "POST", body: "{}" }));
    expect(response.status).toBe(200);
    expect(calls.slice(-3)).toEqual([
      "POST /api/v1/me Bearer access-1",
      "POST /api/v1/auth/session/refresh",
      "POST /api/v1/me Bearer access-3",
    ]);
  });

  it("concurrent callers share one refresh (the refresh token rotates)", async () => {
    const { session, calls } = fakeGateway();
    const answers = await Promise.all([session.validToken(), session.validToken(), session.validToken()]);
    expect(answers).toEqual(["access-1", "access-1", "access-1"]);
    expect(calls.filter((c) => c.includes("refresh"))).toHaveLength(1);
  });

  it("a dead session signs the person out", async () => {
    const { session } = fakeGateway({ refreshFails: true });
    const changes: boolean[] = [];
    session.onChange((signedIn) => changes.push(signedIn));
    expect((await session.authorizedFetch(me())).status).toBe(401);
    expect(session.accessToken).toBeNull();
    expect(changes).toEqual([]);
  });

  it("sign-out revokes on the gateway and forgets the token", async () => {
    const { session, calls } = fakeGateway();
    const changes: boolean[] = [];
    session.onChange((signedIn) => changes.push(signedIn));
    await session.signIn("li.wei", "pw");
    await session.signOut();
    expect(calls.at(-1)).toBe("DELETE /api/v1/auth/session Bearer access-1");
    expect(session.accessToken).toBeNull();
    expect(changes).toEqual([true, false]);
  });
});
