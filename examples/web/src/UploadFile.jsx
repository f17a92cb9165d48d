import { useMutation, useSubscription } from "@apollo/client/react";
import { useState } from "react";
import { ErrorMessage } from "./errors.jsx";
import { FILE_UPDATED, UPLOAD_FILE } from "./operations.js";

/** Upload a file with a progress bar, then follow its processing live. */
export default function UploadFile() {
  const [upload, { data, error }] = useMutation(UPLOAD_FILE);
  const [percent, setPercent] = useState(null);

  function choose(event) {
    const [file] = event.target.files;
    if (!file) return;
    setPercent(0);
    upload({
      variables: { file },
      // Read by xhrFetch.js: fetch() itself cannot report upload progress.
      context: {
        fetchOptions: {
          onUploadProgress: (loaded, total) => setPercent(Math.round((100 * loaded) / total)),
        },
      },
    }).catch(() => {});
  }

  const file = data?.uploadFile;
  return (
    <section>
      <h2>Upload a file</h2>
      <label>
        File
        <input type="file" onChange={choose} />
      </label>
      {percent !== null && (
        <p>
          <progress max="100" value={percent} /> <span data-testid="upload-progress">{percent}%</span>
        </p>
      )}
      <ErrorMessage error={error} />
      {file && <FileProcessing key={file.id} file={file} />}
    </section>
  );
}

function FileProcessing({ file }) {
  const [statuses, setStatuses] = useState([]);
  // The subscription sends the file as it is now, then at each status change, and completes
  // once it is PROCESSED or FAILED.
  const { data, error } = useSubscription(FILE_UPDATED, {
    variables: { id: file.id },
    onData: ({ data: { data } }) =>
      setStatuses((seen) => {
        const status = data.fileUpdated.status;
        return seen.at(-1) === status ? seen : [...seen, status];
      }),
  });
  const now = data?.fileUpdated ?? file;
  return (
    <div>
      <p>
        {now.filename} ({now.size} bytes): <strong data-testid="file-status">{now.status}</strong>
        {now.status === "PROCESSED" && (
          <span data-testid="file-counts">
            {" "}
            {now.lineCount} lines, {now.wordCount} words, {now.mimeType}
          </span>
        )}
        {now.error && <span className="error"> {now.error}</span>}
      </p>
      <p data-testid="file-history">Seen live: {statuses.join(" → ")}</p>
      <ErrorMessage error={error} />
    </div>
  );
}
