// sessionStorage when the browser allows it; memory when it does not. Inside an
// iframe on another site, storage may be blocked outright ("Access is denied").
const memory = new Map();

function probe() {
  try {
    const storage = window.sessionStorage;
    storage.setItem("assist-panel.probe", "1");
    storage.removeItem("assist-panel.probe");
    return storage;
  } catch {
    return null;
  }
}

const storage = probe();

export const persistent = storage !== null;

export function getItem(key) {
  return storage ? storage.getItem(key) : memory.get(key) ?? null;
}

export function setItem(key, value) {
  if (storage) storage.setItem(key, value);
  else memory.set(key, value);
}

export function removeItem(key) {
  if (storage) storage.removeItem(key);
  else memory.delete(key);
}
