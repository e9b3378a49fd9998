"""Statistics and rendering of regression reports (DESIGN §6)."""
