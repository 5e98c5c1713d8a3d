// The /v1 API, read with the operator's admin key. The key lives in this tab's sessionStorage
// only: gone when the tab closes, never sent anywhere but this origin.
const STORED_AS = "sessionmeter.adminKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const key = {
  get: () => sessionStorage.getItem(STORED_AS),
  set: (value) => sessionStorage.setItem(STORED_AS, value),
  forget: () => sessionStorage.removeItem(STORED_AS),
};

// What a refused key means to the operator: 401 is a key the service does not know (or no
// longer), 403 a real key of a lesser role (ingest or app).
function refusal(status, body) {
  if (status === 401) return "This key was not accepted: it is unknown, revoked or expired.";
  if (status === 403) return "This is not an admin key: this needs an admin key.";
  return `${status} ${body.error || ""}: ${body.detail || "the service refused the request"}`;
}

export async function get(path, params = {}, apiKey = key.get()) {
  const query = new URLSearchParams(
    Object.entries(params).filter(([, value]) => value !== undefined && value !== null && value !== ""),
  );
  const url = query.size ? `${path}?${query}` : path;
  const answer = await fetch(url, { headers: { "X-API-Key": apiKey }, credentials: "omit" });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new ApiError(answer.status, refusal(answer.status, body));
  return body;
}

// Every item of a paginated list, up to `most` pages (a dashboard shows, it does not export).
export async function everything(path, params = {}, most = 10) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < most; page++) {
    const body = await get(path, { ...params, limit: 500, cursor });
    items.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return items;
}
