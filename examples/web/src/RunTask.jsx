import { useMutation, useSubscription } from "@apollo/client/react";
import { useState } from "react";
import { currentConnection } from "./apollo.js";
import { ErrorMessage } from "./errors.jsx";
import { CREATE_TASK, TASK_LOGS, TASK_UPDATED } from "./operations.js";

export const DEFAULT_IMAGE = import.meta.env.VITE_DEFAULT_IMAGE || "busybox:1.36";

/** Run a shell command in a container, then follow its status and logs live. */
export default function RunTask() {
  const [image, setImage] = useState(DEFAULT_IMAGE);
  const [command, setCommand] = useState("echo hello");
  const [createTask, { data, error }] = useMutation(CREATE_TASK);

  function run(event) {
    event.preventDefault();
    createTask({ variables: { input: { image, command: ["sh", "-c", command] } } }).catch(
      () => {},
    );
  }

  const task = data?.createTask;
  return (
    <section>
      <h2>Run a task</h2>
      <form onSubmit={run}>
        <label>
          Image
          <input type="text" value={image} onChange={(e) => setImage(e.target.value)} />
        </label>
        <label>
          Command
          <input type="text" value={command} onChange={(e) => setCommand(e.target.value)} />
        </label>
        <button type="submit">Run</button>
      </form>
      <ErrorMessage error={error} />
      {task && <TaskProgress key={task.id} task={task} />}
    </section>
  );
}

function TaskProgress({ task }) {
  const updated = useSubscription(TASK_UPDATED, { variables: { id: task.id } });
  const [log, setLog] = useState({ connection: null, text: "" });
  // taskLogs replays the output so far, then streams. A reopened socket (see apollo.js)
  // resubscribes, and so replays it again: its first chunk starts the text anew.
  const logs = useSubscription(TASK_LOGS, {
    variables: { id: task.id },
    onData: ({ data: { data } }) => {
      const connection = currentConnection();
      setLog((shown) => ({
        connection,
        text: (shown.connection === connection ? shown.text : "") + data.taskLogs.text,
      }));
    },
  });
  const now = updated.data?.taskUpdated ?? task;
  return (
    <div>
      <p>
        Task <code>{task.id}</code>: <strong data-testid="task-status">{now.status}</strong>
        {now.exitCode != null && ` (exit code ${now.exitCode})`}
        {now.error && <span className="error"> {now.error}</span>}
      </p>
      <pre data-testid="task-logs">{log.text}</pre>
      <ErrorMessage error={updated.error ?? logs.error} />
    </div>
  );
}
