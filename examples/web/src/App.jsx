import { useApolloClient, useMutation, useQuery } from "@apollo/client/react";
import { useSyncExternalStore } from "react";
import { ErrorMessage } from "./errors.jsx";
import { LOGOUT, ME } from "./operations.js";
import RunTask from "./RunTask.jsx";
import { currentSession, endSession, onSessionChange } from "./session.js";
import SignIn from "./SignIn.jsx";
import UploadFile from "./UploadFile.jsx";
import Workflow from "./Workflow.jsx";

/** Sign in first; then who you are, an upload, a task and a workflow. */
export default function App() {
  const session = useSyncExternalStore(onSessionChange, currentSession);
  return (
    <main>
      <h1>Dockyard</h1>
      {session ? <SignedIn /> : <SignIn />}
    </main>
  );
}

function SignedIn() {
  const client = useApolloClient();
  const me = useQuery(ME);
  const [logout] = useMutation(LOGOUT);

  async function signOut() {
    // Revoke the tokens on the server too; forget them here whatever it answers.
    await logout().catch(() => {});
    endSession();
    await client.clearStore();
  }

  return (
    <>
      <p>
        Signed in as <strong data-testid="me">{me.data?.me.email ?? "…"}</strong>{" "}
        <button onClick={signOut}>Log out</button>
      </p>
      <ErrorMessage error={me.error} />
      <UploadFile />
      <RunTask />
      <Workflow />
    </>
  );
}
