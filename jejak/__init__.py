"""jejak."""
