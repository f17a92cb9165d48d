"""Example Dockyard plugins: the `jsonl` notifier channel and the `tsv` file processor."""
