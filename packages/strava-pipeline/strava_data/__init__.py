"""Rules for the loaded data: deletions applied, a revoking athlete forgotten, the merged view."""
