// The page's state in its URL (?gen=digits-gan&seed=7...), so a result can be shared by link.
// replaceState, not pushState: moving a slider must not fill the back button's history.

export function readState() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

export function writeState(patch) {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined || value === null || value === "") params.delete(key);
    else params.set(key, String(value));
  }
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}
