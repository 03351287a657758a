"""Development helpers (demo, test database); not part of the installed package."""
