"""The read-only web UI and its JSON API (docs/api.md)."""
