"""The public GraphQL gateway: one schema over the auth, files and tasks services."""
