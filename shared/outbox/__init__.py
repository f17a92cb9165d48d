"""Transactional outbox: the tables every service owns and the relay that publishes them."""
