"""The Blocks dataset (15 chains of five squares with a triangle head)."""
