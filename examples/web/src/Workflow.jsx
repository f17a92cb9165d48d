import { useMutation, useSubscription } from "@apollo/client/react";
import { useState } from "react";
import { ErrorMessage } from "./errors.jsx";
import { CREATE_WORKFLOW, WORKFLOW_UPDATED } from "./operations.js";
import { DEFAULT_IMAGE } from "./RunTask.jsx";

function step(name, image, dependsOn = []) {
  return { name, dependsOn, task: { image, command: ["sh", "-c", `echo ${name}`] } };
}

/** A diamond of four steps: prepare, then left and right at once, then report. */
function diamond(image) {
  return {
    name: "diamond",
    steps: [
      step("prepare", image),
      step("left", image, ["prepare"]),
      step("right", image, ["prepare"]),
      step("report", image, ["left", "right"]),
    ],
  };
}

/** Start an example workflow and watch its steps advance live. */
export default function Workflow() {
  const [image, setImage] = useState(DEFAULT_IMAGE);
  const [createWorkflow, { data, error }] = useMutation(CREATE_WORKFLOW);

  function start(event) {
    event.preventDefault();
    createWorkflow({ variables: { input: diamond(image) } }).catch(() => {});
  }

  const workflow = data?.createWorkflow;
  return (
    <section>
      <h2>Run a workflow</h2>
      <form onSubmit={start}>
        <label>
          Image of its steps
          <input type="text" value={image} onChange={(e) => setImage(e.target.value)} />
        </label>
        <button type="submit">Start workflow</button>
      </form>
      <ErrorMessage error={error} />
      {workflow && <WorkflowSteps key={workflow.id} workflow={workflow} />}
    </section>
  );
}

function WorkflowSteps({ workflow }) {
  // Sent at once, then at every status change of the workflow or one of its steps.
  const { data, error } = useSubscription(WORKFLOW_UPDATED, { variables: { id: workflow.id } });
  const now = data?.workflowUpdated ?? workflow;
  return (
    <div>
      <p>
        Workflow {now.name}: <strong data-testid="workflow-status">{now.status}</strong>
        {now.failedStep && ` (failed at ${now.failedStep})`}
      </p>
      <table>
        <thead>
          <tr>
            <th>Step</th>
            <th>After</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {now.steps.map((s) => (
            <tr key={s.name} data-testid={`step-${s.name}`}>
              <td>{s.name}</td>
              <td>{s.dependsOn.join(", ") || "—"}</td>
              <td>{s.task.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorMessage error={error} />
    </div>
  );
}
