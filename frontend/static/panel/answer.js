// Appending streamed answer text safely: text nodes only, and "[n]" citations
// turned into links to the n-th source. Nothing here can create markup from text.

const CITATION = /\[(\d{1,2})\]/g;

export function safeUrl(url) {
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// Splits off the part of `text` that is safe to render now: a trailing "[" or
// "[1" may be the start of a citation whose end has not arrived yet.
export function renderablePrefix(text, final) {
  if (final) return text.length;
  const open = text.lastIndexOf("[");
  if (open !== -1 && text.indexOf("]", open) === -1 && text.length - open <= 4) return open;
  return text.length;
}

export function appendAnswer(container, text, sources) {
  let last = 0;
  for (const match of text.matchAll(CITATION)) {
    if (match.index > last) container.append(document.createTextNode(text.slice(last, match.index)));
    const source = sources[Number(match[1]) - 1];
    const href = source && safeUrl(source.url);
    if (href) {
      const link = document.createElement("a");
      link.className = "ap-cite";
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.title = source.title;
      link.textContent = match[0];
      container.append(link);
    } else {
      container.append(document.createTextNode(match[0]));
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) container.append(document.createTextNode(text.slice(last)));
}
