"""Upload a file, watch it being processed, run a task that reads it and print its logs live.

    python examples/client/run_task.py --url http://127.0.0.1:8000/graphql \
        --email me@example.com --password '...' [--register] notes.txt

Drives Dockyard through dockyard.client: no GraphQL written by hand.
"""

from __future__ import annotations

import argparse
import sys

from dockyard.client import CreateTaskInput, Dockyard, DockyardError

#: A task that counts the lines of its input file, mounted read-only under /input.
COMMAND = ["sh", "-c", 'echo "lines: $(wc -l < "$DOCKYARD_INPUT_FILE")"; head -n 3 /input/*']


def main(argv: list[str] | None = None) -> int:
    """Run the example; the exit status is 0 when the task SUCCEEDED."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--register", action="store_true", help="sign up first")
    parser.add_argument("--image", default="busybox:latest")
    parser.add_argument("file", help="the file to upload and give the task")
    args = parser.parse_args(argv)
    with Dockyard(args.url) as dockyard:
        try:
            if args.register:
                dockyard.register(args.email, args.password)
            else:
                dockyard.login(args.email, args.password)
            uploaded = dockyard.upload(args.file)
            print(f"uploaded {uploaded.filename} ({uploaded.size} bytes) as {uploaded.id}")
            for state in dockyard.file_updated(uploaded.id):
                print(f"file {state.status.value}")
            if state.status.value != "PROCESSED":
                print(f"processing failed: {state.error}", file=sys.stderr)
                return 1
            task = dockyard.create_task(
                CreateTaskInput(
                    name="count-lines", image=args.image, command=COMMAND, input_file_id=state.id
                )
            )
            print(f"task {task.id} {task.status.value}")
            for chunk in dockyard.task_logs(task.id):
                print(chunk.text, end="" if chunk.text.endswith("\n") else "\n")
            task = dockyard.task(task.id)
            print(f"task {task.status.value} (exit code {task.exit_code})")
            return 0 if task.status.value == "SUCCEEDED" else 1
        except DockyardError as error:
            print(f"{error.code}: {error.message} {error.fields or ''}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
