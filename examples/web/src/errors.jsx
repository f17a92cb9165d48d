// What to show for an error from Apollo Client, by the contract's extensions.code.
import { CombinedGraphQLErrors } from "@apollo/client";

const ADVICE = {
  UNAUTHENTICATED: "Please sign in again.",
  FORBIDDEN: "You are not allowed to do that.",
  NOT_FOUND: "It does not exist (or is not yours).",
  CONFLICT: "That conflicts with what is there already.",
  RATE_LIMITED: "Too many requests: wait a moment and try again.",
  PAYLOAD_TOO_LARGE: "That is too large.",
  SERVICE_UNAVAILABLE: "Dockyard is busy or down: try again shortly.",
  INTERNAL_SERVER_ERROR: "Something went wrong on our side.",
};

/** A message for the user: the gateway's own for input errors, advice by code otherwise. */
export function describeError(error) {
  if (!error) return null;
  if (!CombinedGraphQLErrors.is(error)) return `Cannot reach Dockyard: ${error.message}`;
  const [first] = error.errors;
  const code = first.extensions?.code;
  if (code === "BAD_USER_INPUT") {
    const fields = first.extensions.fields ?? {};
    const details = Object.entries(fields).map(([field, message]) => `${field}: ${message}`);
    return details.length ? details.join("; ") : first.message;
  }
  return ADVICE[code] ? `${first.message} ${ADVICE[code]}` : first.message;
}

/** The error as a paragraph, or nothing. */
export function ErrorMessage({ error }) {
  const message = describeError(error);
  return message ? <p role="alert" className="error">{message}</p> : null;
}
