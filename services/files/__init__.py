"""Files service: file intake, storage and asynchronous processing."""
