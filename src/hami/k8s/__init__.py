"""The Kubernetes API behind a small port: a lightkube-backed client and an in-memory fake."""
