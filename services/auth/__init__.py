"""Auth service: users, password hashing, JWT access and refresh tokens, revocation."""
