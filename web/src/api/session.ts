// The browser session. The refresh token lives in an HttpOnly cookie the gateway sets (scoped to
// /api/v1/auth, out of reach of scripts); the access token lives only in this module's memory.
// A reload starts with no access token and gets one from the cookie; a 401 refreshes once.

const SESSION = "/api/v1/auth/session";
// Refresh this long before the access token expires, so requests rarely meet a 401.
const EARLY_MS = 30_000;

type Listener = (signedIn: boolean) => void;

export interface SessionDeps {
  fetch: typeof fetch;
  now: () => number;
  // Serialises refreshes across tabs: the refresh token rotates, and a second tab presenting the
  // one just used would end the session for both.
  lock: <T>(run: () => Promise<T>) => Promise<T>;
}

interface Issued {
  access_token: string;
  expires_in: number;
}

export class Session {
  private token: string | null = null;
  private expiresAt = 0;
  private refreshing: Promise<string | null> | null = null;
  private listeners = new Set<Listener>();

  constructor(private readonly deps: SessionDeps) {}

  get accessToken(): string | null {
    return this.token;
  }

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Signs in; answers the problem's response when the gateway refuses. */
  async signIn(username: string, password: string): Promise<Response> {
    const response = await this.deps.fetch(SESSION, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (response.ok) this.accept((await response.clone().json()) as Issued);
    return response;
  }

  /** A valid access token, refreshed from the cookie when missing or about to expire. */
  async validToken(): Promise<string | null> {
    if (this.token && this.deps.now() < this.expiresAt - EARLY_MS) return this.token;
    return this.refresh();
  }

  /** One refresh at a time in this tab; callers arriving meanwhile share its answer. */
  refresh(): Promise<string | null> {
    if (!this.refreshing) {
      const stale = this.token;
      this.refreshing = this.deps
        .lock(async () => {
          // Another tab may have refreshed while this one waited; the cookie is then new already.
          if (this.token && this.token !== stale && this.deps.now() < this.expiresAt - EARLY_MS) return this.token;
          const response = await this.deps.fetch(`${SESSION}/refresh`, { method: "POST", credentials: "same-origin" });
          if (!response.ok) {
            this.clear();
            return null;
          }
          this.accept((await response.json()) as Issued);
          return this.token;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  async signOut(): Promise<void> {
    const token = await this.validToken();
    if (token) {
      await this.deps.fetch(SESSION, {
        method: "DELETE",
        credentials: "same-origin",
        headers: { Authorization: `Bearer ${token}` },
      });
    }
    this.clear();
  }

  /** fetch with the access token; on 401 the token is refreshed and the request sent once more. */
  async authorizedFetch(request: Request): Promise<Response> {
    const retry = request.clone();
    const token = await this.validToken();
    const response = await this.deps.fetch(withToken(request, token));
    if (response.status !== 401 || !token) return response;
    const fresh = await this.refresh();
    return fresh ? this.deps.fetch(withToken(retry, fresh)) : response;
  }

  private accept(issued: Issued): void {
    const wasSignedIn = this.token !== null;
    this.token = issued.access_token;
    this.expiresAt = this.deps.now() + issued.expires_in * 1000;
    if (!wasSignedIn) this.listeners.forEach((listener) => listener(true));
  }

  private clear(): void {
    const wasSignedIn = this.token !== null;
    this.token = null;
    this.expiresAt = 0;
    if (wasSignedIn) this.listeners.forEach((listener) => listener(false));
  }
}

function withToken(request: Request, token: string | null): Request {
  if (!token) return request;
  const headers = new Headers(request.headers);
  headers.set("Authorization", `Bearer ${token}`);
  return new Request(request, { headers });
}

function browserLock<T>(run: () => Promise<T>): Promise<T> {
  return typeof navigator !== "undefined" && navigator.locks
    ? (navigator.locks.request("crm-session-refresh", run) as Promise<T>)
    : run();
}

export const session = new Session({ fetch: (...args) => fetch(...args), now: () => Date.now(), lock: browserLock });
