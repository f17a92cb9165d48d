"""Example Dockyard plugins: the `jsonl` notifier channel, the `tsv` file processor and the
`labelled-docker` executor."""
