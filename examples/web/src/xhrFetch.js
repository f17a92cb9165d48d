// fetch() reports no upload progress, XMLHttpRequest does. UploadHttpLink takes a `fetch`
// option: this one sends with XHR when the request asks for progress
// (context.fetchOptions.onUploadProgress), and with the browser's fetch otherwise.

/** A fetch that calls `options.onUploadProgress(loaded, total)` while the body is sent. */
export default function xhrFetch(url, options = {}) {
  const { onUploadProgress, ...init } = options;
  if (!onUploadProgress) return fetch(url, init);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(init.method || "POST", url);
    for (const [name, value] of new Headers(init.headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onUploadProgress(event.loaded, event.total);
    xhr.upload.onload = (event) => onUploadProgress(event.total, event.total);
    xhr.onload = () =>
      resolve(
        new Response(xhr.responseText, {
          status: xhr.status,
          statusText: xhr.statusText,
          headers: responseHeaders(xhr),
        }),
      );
    xhr.onerror = () => reject(new TypeError("Network request failed"));
    xhr.onabort = () => reject(new DOMException("The upload was aborted.", "AbortError"));
    init.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(init.body);
  });
}

function responseHeaders(xhr) {
  const headers = new Headers();
  for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return headers;
}
