import { useMutation } from "@apollo/client/react";
import { useState } from "react";
import { ErrorMessage } from "./errors.jsx";
import { LOGIN, REGISTER } from "./operations.js";
import { startSession } from "./session.js";

/** Sign up or log in with an email and a password; either starts a session. */
export default function SignIn() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const [register] = useMutation(REGISTER);
  const [login] = useMutation(LOGIN);

  async function submit(mutate, field) {
    setError(null);
    try {
      const { data } = await mutate({ variables: { email, password } });
      startSession(data[field]);
    } catch (failure) {
      setError(failure);
    }
  }

  function logIn(event) {
    event.preventDefault();
    submit(login, "login");
  }

  return (
    <section>
      <h2>Sign in</h2>
      <form onSubmit={logIn}>
        <label>
          Email
          <input type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <button type="submit">Log in</button>
        <button type="button" onClick={() => submit(register, "register")}>
          Sign up
        </button>
      </form>
      <ErrorMessage error={error} />
    </section>
  );
}
