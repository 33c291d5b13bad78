"""``python -m evalkit generate``: sample videos from a checkpoint for a prompt suite."""
