// What to show for an error from Apollo Client, by the contract's extensions.code.
import { CombinedGraphQLErrors, ServerError } from "@apollo/client";

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

/** The first contract error in an Apollo error: GraphQL errors, or the body of an HTTP error. */
export function firstError(error) {
  if (CombinedGraphQLErrors.is(error)) return error.errors[0];
  // Another non-2xx answer: the gateway's edge (429 for too many connections from one address,
  // 403 for a blocked one) answers {"status", "code", "message"}; a proxy may answer anything.
  if (ServerError.is(error)) {
    try {
      const body = JSON.parse(error.bodyText);
      if (body.errors?.length) return body.errors[0];
      if (body.code) return { message: body.message, extensions: { code: body.code } };
    } catch {
      // not JSON: a proxy's page
    }
  }
  return null;
}

/** A message for the user: the gateway's own for input errors, advice by code otherwise. */
export function describeError(error) {
  if (!error) return null;
  const first = firstError(error);
  if (!first) return `Cannot reach Dockyard: ${error.message}`;
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
