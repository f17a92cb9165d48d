// Every operation the app sends, in one place.
import { gql } from "@apollo/client";

const AUTH_PAYLOAD = "accessToken refreshToken expiresIn user { id email }";

export const REGISTER = gql`
  mutation Register($email: String!, $password: String!) {
    register(email: $email, password: $password) { ${AUTH_PAYLOAD} }
  }
`;

export const LOGIN = gql`
  mutation Login($email: String!, $password: String!) {
    login(email: $email, password: $password) { ${AUTH_PAYLOAD} }
  }
`;

// Sent with plain fetch by session.js, outside Apollo's link chain (it is how that chain recovers).
export const REFRESH_TOKEN = `
  mutation RefreshToken($refreshToken: String!) {
    refreshToken(refreshToken: $refreshToken) { ${AUTH_PAYLOAD} }
  }
`;

export const LOGOUT = gql`
  mutation Logout {
    logout
  }
`;

export const ME = gql`
  query Me {
    me { id email }
  }
`;

const FILE_FIELDS = "id filename size status lineCount wordCount mimeType error";

export const UPLOAD_FILE = gql`
  mutation UploadFile($file: Upload!) {
    uploadFile(file: $file) { ${FILE_FIELDS} }
  }
`;

export const FILE_UPDATED = gql`
  subscription FileUpdated($id: ID!) {
    fileUpdated(id: $id) { ${FILE_FIELDS} }
  }
`;

export const CREATE_TASK = gql`
  mutation CreateTask($input: CreateTaskInput!) {
    createTask(input: $input) { id status }
  }
`;

export const TASK_UPDATED = gql`
  subscription TaskUpdated($id: ID!) {
    taskUpdated(id: $id) { id status exitCode error }
  }
`;

export const TASK_LOGS = gql`
  subscription TaskLogs($id: ID!) {
    taskLogs(id: $id) { stream text at }
  }
`;

const WORKFLOW_FIELDS = `
  id name status failedStep
  steps { name dependsOn task { id status } }
`;

export const CREATE_WORKFLOW = gql`
  mutation CreateWorkflow($input: CreateWorkflowInput!) {
    createWorkflow(input: $input) { ${WORKFLOW_FIELDS} }
  }
`;

export const WORKFLOW_UPDATED = gql`
  subscription WorkflowUpdated($id: ID!) {
    workflowUpdated(id: $id) { ${WORKFLOW_FIELDS} }
  }
`;
