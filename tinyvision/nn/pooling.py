"""Placeholder: filled in by the vision-layers work (issue 3)."""
__all__ = []
